/** Samples as the Mesh stream carries them between the agents and the coordinator. */

/** A series as the wire carries it: times are offsets from the batch's created_ms. */
export interface SeriesPoints {
  entity: string;
  metric: string;
  offsets_ms: number[];
  values: number[];
}
