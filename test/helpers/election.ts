/** Shared fixtures of the election unit tests: fixed timeouts per node and a synchronous network. */
import { expect } from 'vitest';
import { Election, type HardState, type Message, type Ready } from '../../coordinator/election/election';

export const IDS = ['n1', 'n2', 'n3'];
/** Fixed "random" per node: n1 times out first (500 ms), then n2 (750), then n3 (950). */
export const R: Record<string, number> = { n1: 0, n2: 0.5, n3: 0.9, n4: 0.3, n5: 0.7 };

export function node(id: string, members = IDS, hard?: HardState | null): Election {
  return new Election({ id, members, random: () => R[id] ?? 0.5 }, hard);
}

/** Tick like the driver does (every 10 ms, well under clockJumpMs) from `from` to `to`; returns the last Ready. */
export function run(e: Election, from: number, to: number): Ready {
  let r = e.tick(from);
  for (let t = from + 10; t <= to; t += 10) r = e.tick(t);
  return r;
}

/** A synchronous network of Elections with a disk per node and a filter for partitions. */
export class Net {
  now = 0;
  readonly nodes = new Map<string, Election>();
  readonly disk = new Map<string, HardState>();
  readonly down = new Set<string>();
  readonly log: Message[] = [];
  blocked: (m: Message) => boolean = () => false;
  private queue: Message[] = [];

  constructor(readonly ids = IDS) {
    for (const id of ids) this.nodes.set(id, node(id, ids));
    for (const id of ids) this.apply(id, this.get(id).tick(0));
    this.flush();
  }
  get(id: string): Election {
    return this.nodes.get(id)!;
  }
  apply(id: string, r: Ready): void {
    if (r.persist) this.disk.set(id, r.persist);
    this.queue.push(...r.messages);
  }
  flush(): void {
    while (this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.log.push(m);
      if (this.down.has(m.to) || this.down.has(m.from) || this.blocked(m)) continue;
      this.apply(m.to, this.get(m.to).receive(m));
    }
  }
  advance(ms: number, step = 10): void {
    for (let t = 0; t < ms; t += step) {
      this.now += step;
      for (const id of this.ids) if (!this.down.has(id)) this.apply(id, this.get(id).tick(this.now));
      this.flush();
    }
  }
  leaders(): string[] {
    return this.ids.filter((id) => !this.down.has(id) && this.get(id).role === 'leader');
  }
  restart(id: string): void {
    this.down.delete(id);
    this.nodes.set(id, node(id, this.ids, this.disk.get(id) ?? null));
    this.apply(id, this.get(id).tick(this.now));
  }
}

export const refusedOnly = (r: Ready) => {
  expect(r.persist).toBeNull();
  expect(r.messages).toEqual([]);
  expect(r.changed).toBe(false);
  expect(r.notes.some((n) => n.kind === 'refused')).toBe(true);
};
