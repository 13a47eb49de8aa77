/** One measurement: the value of a metric of an entity (node id or herd id) at a time. */
export interface Sample {
  entity: string;
  metric: string;
  /** ms since the epoch */
  ts: number;
  value: number;
}

/**
 * A source of samples, polled by the agent at its own rate. collect() never throws for
 * an absent data source (Docker down, pmproxy down): it logs once and returns [].
 */
export interface Collector {
  readonly name: string;
  collect(now: number): Promise<Sample[]>;
  close?(): Promise<void> | void;
}

/** A container as the agent's tracker sees it (mirrors herd.v1.ContainerInfo). */
export interface Container {
  herdId: string;
  dockerId: string;
  name: string;
  image: string;
  state: string;
  pid: number;
  labels: Record<string, string>;
  createdMs: number;
  /** Limits as created (0 = none): CPU in cores, memory in bytes. */
  cpuLimit?: number;
  memoryLimitBytes?: number;
}
