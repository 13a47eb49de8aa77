/**
 * Logging: one line per event, "time level [module] message key=value...", to stderr.
 * Level from HERD_LOG_LEVEL (debug, info, warn, error; default info).
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = order[(process.env.HERD_LOG_LEVEL as Level) ?? 'info'] ?? order.info;

export function setLogLevel(level: Level): void {
  threshold = order[level];
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function format(fields?: Record<string, unknown>): string {
  if (!fields) return '';
  return Object.entries(fields)
    .map(([k, v]) => {
      const s = v instanceof Error ? v.message : typeof v === 'string' ? v : JSON.stringify(v);
      return ` ${k}=${/\s/.test(s ?? '') ? JSON.stringify(s) : s}`;
    })
    .join('');
}

export function logger(module: string): Logger {
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${module}] ${msg}${format(fields)}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
