import { describe, expect, it } from 'vitest';
import { ConfigError, parseSettings, readConfigFile } from '../../agent/config';
import { mergeFlags } from '../../cli/flags';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';

describe('settings', () => {
  it('has defaults for everything', () => {
    const s = parseSettings({});
    expect(s.listen).toBe('0.0.0.0:7400');
    expect(s.intervals).toEqual({ hostMs: 5000, containerMs: 5000, trackMs: 2000, pcpMs: 5000 });
    expect(s.peers).toEqual([]);
    expect(s.dockerTimeoutMs).toBe(10_000);
    expect(s.meshDeadAfterMs).toBe(6000);
    expect(parseSettings(mergeFlags({}, { meshDeadAfter: 30_000 })).meshDeadAfterMs).toBe(30_000);
    expect(parseSettings(mergeFlags({ dockerTimeoutMs: 20_000 }, { dockerTimeout: 60_000 })).dockerTimeoutMs).toBe(60_000);
    expect(s.nodeId).toMatch(/^[A-Za-z0-9]/);
  });

  it('parses peers given as strings or objects and flags over the file', () => {
    const s = parseSettings(mergeFlags({ nodeId: 'a', peers: [{ id: 'b', address: '10.0.0.2:7400' }], intervals: { hostMs: 1000 } }, { peer: ['c=10.0.0.3:7400'], containerInterval: 250, label: ['zone=lab'] }));
    expect(s.peers).toEqual([{ id: 'c', address: '10.0.0.3:7400' }]);
    expect(s.intervals.hostMs).toBe(1000);
    expect(s.intervals.containerMs).toBe(250);
    expect(s.labels).toEqual({ zone: 'lab' });
  });

  it('the page server threshold: 64 MiB by default, the flag over the file', () => {
    expect(parseSettings({}).pageServerMinBytes).toBe(64 * 1024 * 1024);
    expect(parseSettings(mergeFlags({ pageServerMinBytes: 1 }, { pageServerMinBytes: 0 })).pageServerMinBytes).toBe(0);
  });

  it('names the key and the reason of every error', () => {
    const bad = (raw: unknown) => {
      try {
        parseSettings(raw, 'config x.json');
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('no error');
    };
    expect(bad({ listen: 'nope' })).toMatch(/key listen: must be host:port/);
    expect(bad({ intervals: { hostMs: 5 } })).toMatch(/key intervals\.hostMs: .*100/);
    expect(bad({ intervals: { hostMs: 'fast' } })).toMatch(/key intervals\.hostMs/);
    expect(bad({ peers: ['b'] })).toMatch(/key peers\.0/);
    expect(bad({ peers: ['b=10.0.0.1:7400', 'b=10.0.0.2:7400'] })).toMatch(/node id "b" appears twice/);
    expect(bad({ nodeId: 'a b' })).toMatch(/key nodeId/);
    expect(bad({ lissten: '1.2.3.4:5' })).toMatch(/lissten/);
    expect(bad({ pmproxyUrl: 'not a url' })).toMatch(/key pmproxyUrl/);
    expect(bad({ pageServerMinBytes: -1 })).toMatch(/key pageServerMinBytes/);
    expect(bad({ pageServerMinBytes: 1.5 })).toMatch(/key pageServerMinBytes/);
  });

  it('reports unreadable and malformed files', () => {
    const t = tempDir();
    try {
      expect(() => readConfigFile(join(t.dir, 'missing.json'))).toThrow(/cannot read config file/);
      writeFileSync(join(t.dir, 'bad.json'), '{ nodeId: ');
      expect(() => readConfigFile(join(t.dir, 'bad.json'))).toThrow(/is not valid JSON/);
      writeFileSync(join(t.dir, 'arr.json'), '[]');
      expect(() => readConfigFile(join(t.dir, 'arr.json'))).toThrow(/top level must be a JSON object/);
    } finally {
      t.cleanup();
    }
  });
});
