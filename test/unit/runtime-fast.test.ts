// The pure parts of the fast checkpoint path: finding dockerd's containerd from its flags, the
// CheckpointOptions `Any` containerd 1.6 accepts, which images are linked and where the links
// point (the real path is in test/integration/fast-checkpoint.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { checkpointOptionsAny, containerdSocketOf, parseDockerdArgs } from '../../agent/runtime/containerd';
import { imageRootFor, isInside, planLinks } from '../../agent/runtime/fast-checkpoint';
import { withRuncConfOption } from '../../agent/runtime/criu';
import { protoDir } from '../../common/proto';
import { tempDir } from '../helpers/tmp';

describe('dockerd flags', () => {
  it('reads hosts, exec-root and --containerd in every spelling', () => {
    expect(parseDockerdArgs(['-H', 'fd://', '--containerd=/run/containerd/containerd.sock'])).toEqual({ hosts: ['fd://'], execRoot: '/var/run/docker', containerd: '/run/containerd/containerd.sock' });
    expect(parseDockerdArgs(['--experimental', '--exec-root', '/x/exec', '-H', 'unix:///x/d.sock', '--host=tcp://0.0.0.0:2375', '-Hunix:///y.sock'])).toEqual({
      hosts: ['unix:///x/d.sock', 'tcp://0.0.0.0:2375', 'unix:///y.sock'], execRoot: '/x/exec', containerd: '',
    });
    expect(parseDockerdArgs(['--containerd', '/c.sock', '--exec-root=/e'])).toMatchObject({ containerd: '/c.sock', execRoot: '/e' });
    expect(parseDockerdArgs(['-H'])).toEqual({ hosts: [], execRoot: '/var/run/docker', containerd: '' }); // a flag without its value
  });

  it('names the containerd of the dockerd that serves the socket, and no other', () => {
    const bed = parseDockerdArgs(['--exec-root', '/tmp/b/n1/exec', '-H', 'unix:///tmp/b/n1/docker.sock']);
    expect(containerdSocketOf(bed, '/tmp/b/n1/docker.sock')).toBe('/tmp/b/n1/exec/containerd/containerd.sock');
    expect(containerdSocketOf(bed, '/tmp/b/n2/docker.sock')).toBeUndefined();
    // no -H: dockerd's default socket, /var/run and /run being one
    expect(containerdSocketOf(parseDockerdArgs([]), '/run/docker.sock')).toBe('/var/run/docker/containerd/containerd.sock');
    // socket activation (fd://) names no path: it serves the default socket only if told so by -H; here it is not found
    expect(containerdSocketOf(parseDockerdArgs(['-H', 'fd://', '--containerd=/run/containerd/containerd.sock']), '/var/run/docker.sock')).toBeUndefined();
  });
});

describe('CheckpointOptions', () => {
  it('is typed by its bare name and carries exit, open_tcp, image and work paths under their field numbers', () => {
    const any = checkpointOptionsAny({ imagePath: '/tmp/i/img', workPath: '/tmp/i/work', openTcp: true });
    expect(any.type_url).toBe('containerd.runc.v1.CheckpointOptions');
    // decoded with a schema written from containerd's oci.proto numbers, independent of ours
    const T = protobuf.parse('syntax="proto3"; message O { bool exit = 1; bool open_tcp = 2; string image_path = 8; string work_path = 9; }', { keepCase: true }).root.lookupType('O');
    expect(T.toObject(T.decode(any.value))).toEqual({ exit: true, open_tcp: true, image_path: '/tmp/i/img', work_path: '/tmp/i/work' });
    expect(T.toObject(T.decode(checkpointOptionsAny({ imagePath: '/a', workPath: '/b' }).value))).toMatchObject({ exit: true, image_path: '/a', work_path: '/b' });
    expect(T.decode(checkpointOptionsAny({ imagePath: '/a', workPath: '/b' }).value)).toMatchObject({ open_tcp: false });
    expect(protoDir()).toBe(path.resolve('proto'));
  });
});

describe('linked checkpoint dir', () => {
  it('links the page images (and anything big) relative to containerd\'s unpack dir, copies the rest', () => {
    const plan = planLinks([
      { name: 'inventory.img', size: 40 }, { name: 'pages-1.img', size: 100 }, { name: 'pages-12.img', size: 200 << 20 },
      { name: 'pagemap-7.img', size: 900 }, { name: 'tmpfs-dev-55.tar.gz.img', size: 5 << 20 }, { name: 'herd-checkpoint.json', size: 90 },
    ], '/tmp/herd-images-ab/m1.cp', '/tmp');
    expect(plan.copy).toEqual(['inventory.img', 'pagemap-7.img', 'herd-checkpoint.json']);
    expect(plan.link).toEqual([
      { name: 'pages-1.img', target: '../herd-images-ab/m1.cp/pages-1.img' },
      { name: 'pages-12.img', target: '../herd-images-ab/m1.cp/pages-12.img' },
      { name: 'tmpfs-dev-55.tar.gz.img', target: '../herd-images-ab/m1.cp/tmpfs-dev-55.tar.gz.img' },
    ]);
    // the link resolves from the unpacked copy back to the tmpfs
    expect(path.resolve('/tmp/ctrd-checkpoint123456', plan.link[0].target)).toBe('/tmp/herd-images-ab/m1.cp/pages-1.img');
  });

  it('keeps one image root per Docker socket, and tells inside from beside', () => {
    expect(imageRootFor('/tmp/b/n1/docker.sock', '/tmp')).not.toBe(imageRootFor('/tmp/b/n2/docker.sock', '/tmp'));
    expect(imageRootFor('/var/run/docker.sock', '/run/user/0')).toMatch(/^\/run\/user\/0\/herd-images-[0-9a-f]{10}$/);
    expect(isInside('/tmp/r', '/tmp/r/m1.cp')).toBe(true);
    expect(isInside('/tmp/r', '/tmp/r')).toBe(false);
    expect(isInside('/tmp/r', '/tmp/r2/x')).toBe(false);
    expect(isInside('/tmp/r', '/tmp/r/../x')).toBe(false);
  });
});

describe("runc's CRIU config for one restore", () => {
  it('adds the option and puts the file back as it was: absent, without the option, or with it', () => {
    const t = tempDir('herd-runcconf-');
    try {
      const conf = path.join(t.dir, 'criu', 'runc.conf');
      let undo = withRuncConfOption('tcp-established', conf);
      expect(fs.readFileSync(conf, 'utf8')).toBe('tcp-established\n');
      undo();
      expect(fs.existsSync(conf)).toBe(false);
      fs.writeFileSync(conf, 'log-file /var/log/criu.log'); // no final newline
      undo = withRuncConfOption('tcp-established', conf);
      expect(fs.readFileSync(conf, 'utf8')).toBe('log-file /var/log/criu.log\ntcp-established\n');
      undo();
      expect(fs.readFileSync(conf, 'utf8')).toBe('log-file /var/log/criu.log');
      fs.writeFileSync(conf, '--tcp-established\n'); // the operator's own: left alone
      withRuncConfOption('tcp-established', conf)();
      expect(fs.readFileSync(conf, 'utf8')).toBe('--tcp-established\n');
    } finally {
      t.cleanup();
    }
  });
});
