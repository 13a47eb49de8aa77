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

/**
 * Until elections exist: the member with the lowest id is the coordinator, always.
 * A one-node cluster is therefore its own coordinator. No failover.
 */
export class StaticLeadership implements Leadership {
  private readonly view: LeaderView;

  constructor(self: Member, peers: Member[], now = Date.now()) {
    const leader = [self, ...peers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0];
    this.view = { isLeader: leader.id === self.id, leaderId: leader.id, leaderAddress: leader.address, term: 0, sinceMs: now };
  }

  /** The node's own address once its server is bound (listen port 0 picks one). */
  setSelfAddress(address: string): void {
    if (this.view.isLeader) this.view.leaderAddress = address;
  }

  current(): LeaderView {
    return this.view;
  }
  onChange(): void {}
  start(): void {}
  stop(): void {}
}
