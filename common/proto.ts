/**
 * Loads the herd.v1 contract (and the standard health and reflection services) with
 * proto-loader. keepCase: the wire names are snake_case, exactly as the .proto files
 * (and the reflected descriptors, proto/descriptors.binpb) say.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSea, seaExtractor } from './natives';

export const PROTO_FILES = [
  'herd/v1/types.proto',
  'herd/v1/migration.proto',
  'herd/v1/security.proto',
  'herd/v1/forecast.proto',
  'herd/v1/control.proto',
  'herd/v1/mesh.proto',
  'herd/v1/admin.proto',
  'herd/v1/peer.proto',
  'herd/v1/transfer.proto',
  'grpc/health/v1/health.proto',
  'grpc/reflection/v1/reflection.proto',
  'grpc/reflection/v1alpha/reflection.proto',
];

/** protoc's compiled FileDescriptorSet of PROTO_FILES (build/proto.mjs). */
export const DESCRIPTOR_SET = 'descriptors.binpb';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export function protoDir(): string {
  // the single executable carries proto/ and extracts it once (common/natives.ts)
  if (!process.env.HERD_PROTO_DIR && isSea()) return join(seaExtractor().group('proto'), 'proto');
  const candidates = [
    process.env.HERD_PROTO_DIR,
    typeof __dirname === 'string' ? join(__dirname, '..', 'proto') : undefined,
    join(process.cwd(), 'proto'),
  ];
  for (const dir of candidates) {
    if (dir && existsSync(join(dir, 'herd/v1/mesh.proto'))) return dir;
  }
  throw new Error(`cannot find the proto/ directory (looked in ${candidates.filter(Boolean).join(', ')}); set HERD_PROTO_DIR`);
}

export interface Protos {
  definition: protoLoader.PackageDefinition;
  herd: any;
  reflection: { v1: any; v1alpha: any };
  descriptorSet: Buffer;
}

let cached: Protos | undefined;

export function loadProtos(): Protos {
  if (!cached) {
    const dir = protoDir();
    const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [dir] });
    const pkgs = grpc.loadPackageDefinition(definition) as any;
    cached = {
      definition,
      herd: pkgs.herd.v1,
      reflection: { v1: pkgs.grpc.reflection.v1, v1alpha: pkgs.grpc.reflection.v1alpha },
      descriptorSet: readFileSync(join(dir, DESCRIPTOR_SET)),
    };
  }
  return cached;
}

/** Encoders of the Mesh stream, for code that stores or sends pre-encoded messages. */
export function meshCodec(): {
  encodeAgent: (m: unknown) => Buffer;
  decodeAgent: (b: Buffer) => any;
  encodeCoordinator: (m: unknown) => Buffer;
  decodeCoordinator: (b: Buffer) => any;
} {
  const m = (loadProtos().definition['herd.v1.Mesh'] as any).Connect;
  return {
    encodeAgent: m.requestSerialize,
    decodeAgent: m.requestDeserialize,
    encodeCoordinator: m.responseSerialize,
    decodeCoordinator: m.responseDeserialize,
  };
}
