// Compiles the .proto files into proto/descriptors.binpb (a FileDescriptorSet with
// comments) with protoc. The server's reflection service serves these exact bytes, so
// `grpcurl describe` shows the field documentation. Run after editing proto/:
//   npm run proto            (needs protoc: apt-get install protobuf-compiler)
// test/unit/reflection.test.ts fails when the committed file is out of date.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const PROTO_SOURCES = [
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

export function compileDescriptors(out) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('protoc', [`-I${root}proto`, '--include_source_info', '--include_imports', `--descriptor_set_out=${out}`, ...PROTO_SOURCES], { stdio: 'inherit' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  compileDescriptors(process.argv[2] ?? fileURLToPath(new URL('../proto/descriptors.binpb', import.meta.url)));
}
