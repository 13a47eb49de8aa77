/**
 * The model service on a node, wired in one place so agent/node.ts only plugs it in: the
 * store (kept whoever coordinates: replays fill it), the service, its Admin methods, and
 * the catch-up that hands the model in force to an agent that (re)connects.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Env } from '../../common/db';
import type { Snapshot } from '../control/snapshot';
import type { Ingest } from '../ingest';
import { modelHandlers } from './admin';
import { datasetFeatures, type FeatureSource } from './feature-source';
import type { DatasetSources } from './dataset-export';
import { ModelStore, toChunks, type ModelChunk } from './models';
import { ForecastService } from './service';

export interface ModelModuleDeps {
  nodeId: string;
  models: ModelStore;
  sources: DatasetSources;
  ingest: Pick<Ingest, 'command' | 'commandAll'>;
  term: () => number;
  /** The controller's snapshot now. */
  snapshot: () => Snapshot;
  /** Appends records to this node's own sample log. */
  appendToLog: (control: { models: ModelChunk[] }) => void;
  features?: FeatureSource;
}

/** The store: made before the mesh's Ingest, which feeds it from every batch. */
export const modelStore = (env: Env) => new ModelStore(env);

export function modelModule(deps: ModelModuleDeps): { service: ForecastService; catchUp: (nodeId: string) => void; handlers: grpc.UntypedServiceImplementation } {
  const features = deps.features ?? datasetFeatures;
  // One piece per log batch and per command: each stays far below gRPC's 4 MiB.
  const send = (chunks: ModelChunk[], to?: string) => {
    chunks.forEach((c, i) => {
      const command = { term: deps.term(), command_id: `model-${c.info.version}-${i}-${Date.now()}`, control: { models: [c] } };
      if (to) deps.ingest.command(to, command);
      else deps.ingest.commandAll(command, deps.nodeId);
    });
  };
  const service = new ForecastService({
    models: deps.models,
    features,
    sources: deps.sources,
    term: deps.term,
    persist: (chunks) => {
      for (const c of chunks) deps.appendToLog({ models: [c] });
      send(chunks);
    },
  });
  /**
   * An agent that (re)connects gets the model in force again: one stored while its stream
   * was down would otherwise be on fewer nodes, and after a failover every agent's log gets
   * a fresh copy (its retention would drop an old one). Its log may then hold it twice; the
   * store keeps one record per version.
   */
  const catchUp = (nodeId: string) => {
    if (nodeId === deps.nodeId) return;
    const m = deps.models.inForce();
    if (m) send(toChunks(m), nodeId);
  };
  const handlers = modelHandlers({ service, models: deps.models, featureNames: features.names, snapshot: deps.snapshot });
  return { service, catchUp, handlers };
}
