/**
 * Who the coordinator is. The rest of the node only asks this interface, so the way the
 * leader is chosen can change without touching the mesh or the admin API.
 */
export interface LeaderView {
  isLeader: boolean;
  leaderId?: string;
  leaderAddress?: string;
  term: number;
  sinceMs: number;
}

export interface Leadership {
  current(): LeaderView;
  onChange(fn: (v: LeaderView) => void): void;
  start(): void;
  stop(): void;
}

export interface Member {
  id: string;
  address: string;
}
