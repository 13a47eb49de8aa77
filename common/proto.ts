/**
 * Loads the herd.v1 contract (and the standard health service) with proto-loader.
 * keepCase: the wire names are snake_case, and reflection clients see exactly what
 * the .proto files say (grpc-node#2958: camelCase conversion confuses strict clients).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const PROTO_FILES = [
  'herd/v1/types.proto',
  'herd/v1/mesh.proto',
  'herd/v1/admin.proto',
  'grpc/health/v1/health.proto',
];

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function protoDir(): string {
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

let cached: { definition: protoLoader.PackageDefinition; herd: any } | undefined;

export function loadProtos(): { definition: protoLoader.PackageDefinition; herd: any } {
  if (!cached) {
    const dir = protoDir();
    const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [dir] });
    const herd = (grpc.loadPackageDefinition(definition) as any).herd.v1;
    cached = { definition, herd };
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
