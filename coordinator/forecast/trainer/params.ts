/**
 * Hyperparameters, named and defaulted as XGBoost names them (eta 0.3, max_depth 6,
 * lambda 1, gamma 0, min_child_weight 1, max_bin 256), each checked against its range so
 * a bad value is refused with the field's name before any work is done.
 */
export interface TrainParams {
  /** Boosting rounds (trees), at most; early stopping may keep fewer. */
  rounds: number;
  maxDepth: number;
  /** Learning rate: each leaf's value is scaled by it. */
  eta: number;
  /** L2 regularisation of leaf values. */
  lambda: number;
  /** Least gain a split must bring (XGBoost's min_split_loss). */
  gamma: number;
  /** Least hessian sum (rows, for squared error) in each child of a split. */
  minChildWeight: number;
  maxBin: number;
  /** Stop when the validation RMSE has not improved for this many rounds (0: never). */
  earlyStoppingRounds: number;
}

export const DEFAULT_PARAMS: Readonly<TrainParams> = {
  rounds: 100,
  maxDepth: 6,
  eta: 0.3,
  lambda: 1,
  gamma: 0,
  minChildWeight: 1,
  maxBin: 256,
  earlyStoppingRounds: 0,
};

export class ParamError extends Error {
  constructor(
    message: string,
    /** The hyperparameter at fault. */
    readonly field: string,
  ) {
    super(message);
  }
}

interface Range {
  min: number;
  max: number;
  integer: boolean;
  /** min itself is not allowed */
  openMin?: boolean;
  help: string;
}

const RANGES: Record<keyof TrainParams, Range> = {
  rounds: { min: 1, max: 100_000, integer: true, help: 'the number of trees' },
  maxDepth: { min: 1, max: 20, integer: true, help: 'the depth of each tree' },
  eta: { min: 0, max: 1, integer: false, openMin: true, help: 'the learning rate' },
  lambda: { min: 0, max: 1e6, integer: false, help: 'L2 regularisation' },
  gamma: { min: 0, max: 1e12, integer: false, help: 'the least gain of a split' },
  minChildWeight: { min: 0, max: 1e12, integer: false, help: 'the least rows in a child' },
  maxBin: { min: 2, max: 65_535, integer: true, help: 'the most bins per feature' },
  earlyStoppingRounds: { min: 0, max: 100_000, integer: true, help: 'rounds without improvement before stopping; 0 turns it off' },
};

export const PARAM_NAMES = Object.keys(RANGES) as (keyof TrainParams)[];

/** Defaults overlaid with `given`; throws ParamError naming the first field out of range. */
export function checkParams(given: Partial<Record<keyof TrainParams, unknown>> = {}): TrainParams {
  const out = { ...DEFAULT_PARAMS };
  for (const [key, value] of Object.entries(given)) {
    const r = RANGES[key as keyof TrainParams];
    if (!r) throw new ParamError(`unknown hyperparameter "${key}"; known: ${PARAM_NAMES.join(', ')}`, key);
    if (value === undefined) continue;
    const v = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    const bounds = `${r.openMin ? '>' : '>='} ${r.min} and <= ${r.max}`;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < r.min || v > r.max || (r.openMin && v === r.min) || (r.integer && !Number.isInteger(v))) {
      throw new ParamError(`hyperparameter ${key} = ${JSON.stringify(value)} is out of range: ${r.help} must be ${r.integer ? 'an integer ' : 'a number '}${bounds}`, key);
    }
    out[key as keyof TrainParams] = v;
  }
  return out;
}
