import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs build script
import { compileDescriptors, PROTO_SOURCES } from '../../build/proto.mjs';
import { DescriptorIndex, splitFileDescriptorSet } from '../../common/reflection';
import { PROTO_FILES } from '../../common/proto';
import { tempDir } from '../helpers/tmp';

const committed = readFileSync(join(__dirname, '..', '..', 'proto', 'descriptors.binpb'));

describe('reflected descriptors', () => {
  it('are protoc output of the current .proto files (run `npm run proto` after editing proto/)', () => {
    const t = tempDir();
    try {
      compileDescriptors(join(t.dir, 'd.binpb'));
      expect(readFileSync(join(t.dir, 'd.binpb')).equals(committed)).toBe(true);
    } finally {
      t.cleanup();
    }
  });

  it('cover exactly the files the server loads', () => {
    expect([...PROTO_FILES].sort()).toEqual([...PROTO_SOURCES].sort());
  });

  it('index every symbol to its file and serve files with their dependencies', () => {
    const idx = new DescriptorIndex(committed);
    expect(splitFileDescriptorSet(committed).length).toBe(PROTO_SOURCES.length);
    expect(idx.fileOf("herd.v1.Peer.Exchange")).toBe("herd/v1/peer.proto");
    expect(idx.fileOf('herd.v1.Admin')).toBe('herd/v1/admin.proto');
    expect(idx.fileOf('.herd.v1.Admin.QuerySamples')).toBe('herd/v1/admin.proto');
    expect(idx.fileOf('herd.v1.ContainerInfo')).toBe('herd/v1/types.proto');
    expect(idx.fileOf('herd.v1.SeriesPoints')).toBe('herd/v1/mesh.proto');
    expect(idx.fileOf('grpc.health.v1.HealthCheckResponse.ServingStatus')).toBe('grpc/health/v1/health.proto');
    expect(idx.fileOf('herd.v1.Nope')).toBeUndefined();
    expect(idx.withDeps('herd/v1/admin.proto').length).toBe(6); // admin, types, migration, security, control, forecast
    expect(idx.services).toContain('herd.v1.Mesh');
  });
});
