// openCheckpointStorage: URLs to storages; the memory storage's shared registry.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { describe, expect, inject, test } from 'vitest';
import { StorageError } from '../../state/storage/checkpoint-storage.js';
import { FileCheckpointStorage } from '../../state/storage/file.js';
import { MemoryCheckpointStorage } from '../../state/storage/memory.js';
import { openCheckpointStorage } from '../../state/storage/open-storage.js';
import { parseRedisUrl, RedisCheckpointStorage } from '../../state/storage/redis.js';

const text = (s: string) => new TextEncoder().encode(s);

describe('openCheckpointStorage', () => {
  test('memory://name: instances of one name share data, other names and private ones do not', async () => {
    const name = `shared-${randomUUID()}`;
    const a = openCheckpointStorage(`memory://${name}`);
    const b = openCheckpointStorage(`memory://${name}`);
    const c = openCheckpointStorage(`memory://other-${randomUUID()}`);
    const d = openCheckpointStorage('memory://');
    expect(a).toBeInstanceOf(MemoryCheckpointStorage);
    expect(a.description).toBe(`memory://${name}`);
    expect(d.description).toBe('memory (private)');
    for (const s of [a, b, c, d]) await s.open();
    const epoch = await a.newEpoch('j');
    await a.commit('j', epoch, 1, text('m'), []);
    expect(await b.latest('j')).toBe(1);
    expect(await c.latest('j')).toBeUndefined();
    expect(await d.latest('j')).toBeUndefined();
    MemoryCheckpointStorage.drop(name);
    const e = openCheckpointStorage(`memory://${name}`);
    await e.open();
    expect(await e.latest('j')).toBeUndefined();
  });

  test('file:///absolute/path and plain paths give a file storage', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tidemark-open-'));
    try {
      const fromUrl = openCheckpointStorage(pathToFileURL(dir).href);
      expect(fromUrl).toBeInstanceOf(FileCheckpointStorage);
      expect(fromUrl.description).toBe(`file://${dir}`);
      expect(openCheckpointStorage(dir).description).toBe(`file://${dir}`);
      expect(openCheckpointStorage('relative/checkpoints').description).toBe(
        `file://${resolve('relative/checkpoints')}`,
      );
      await fromUrl.open();
      const epoch = await fromUrl.newEpoch('j');
      await fromUrl.commit('j', epoch, 1, text('m'), []);
      const again = openCheckpointStorage(dir);
      await again.open();
      expect(await again.latest('j')).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('redis:// and rediss:// URLs, with the password kept out of the description', () => {
    const s = openCheckpointStorage('rediss://ops:s3cret@cache.internal:6380/2?prefix=tm');
    expect(s).toBeInstanceOf(RedisCheckpointStorage);
    expect(s.description).toBe('rediss://ops@cache.internal:6380/2 (prefix tm)');
    expect(s.description).not.toContain('s3cret');
    const cluster = openCheckpointStorage('redis://a:7000,b:7001,[::1]:7002?cluster=1', {
      redis: { keyPrefix: 'x' },
    });
    expect(cluster.description).toBe('redis://a:7000,b:7001,[::1]:7002 (cluster, prefix x)');
    expect(parseRedisUrl('redis://us%40er:p%3Ass@h')).toEqual({
      tls: false,
      username: 'us@er',
      password: 'p:ss',
      nodes: [{ host: 'h', port: 6379 }],
      db: undefined,
      cluster: false,
      keyPrefix: undefined,
    });
  });

  test('a password with an unencoded @, /, ? or # is refused without showing any of it', () => {
    for (const secret of ['Qx7/Zk9', 'Qx7@Zk9', 'Qx7?Zk9', 'Qx7#Zk9']) {
      let message = '';
      try {
        openCheckpointStorage(`redis://app:${secret}@cache.internal:6380/1`);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(
        /^invalid Redis URL 'redis:\/\/app:\*\*\*@cache\.internal:6380\/1': .*percent-encode/,
      );
      for (const piece of secret.split(/[/@?#]/)) expect(message).not.toContain(piece);
    }
    // Encoded, it is fine; an '@' in the prefix is encoded too.
    expect(parseRedisUrl('redis://app:pa%2Fss@h?prefix=a%40b')).toMatchObject({
      password: 'pa/ss',
      keyPrefix: 'a@b',
    });
  });

  test('inspecting or serializing a Redis storage shows its description, not its password', () => {
    const s = openCheckpointStorage('redis://app:hunter2-secret@cache.internal:6380', {
      redis: { password: 'other-secret' },
    });
    expect(inspect(s)).toBe('RedisCheckpointStorage { redis://app@cache.internal:6380 (prefix tidemark) }');
    expect(JSON.stringify({ s })).toBe(
      '{"s":{"description":"redis://app@cache.internal:6380 (prefix tidemark)"}}',
    );
  });

  test('a redis:// URL opens against the shared server', async () => {
    const s = openCheckpointStorage(`${inject('redisUrl')}?prefix=test-${randomUUID()}`);
    await s.open();
    expect(await s.latest('j')).toBeUndefined();
    await s.close();
  });

  test('unknown schemes and bad settings are clear errors', () => {
    expect(() => openCheckpointStorage('s3://bucket/x')).toThrow(
      /unknown checkpoint storage scheme 's3' in 's3:\/\/bucket\/x': use memory:\/\/name, file:\/\/\/absolute\/path/,
    );
    expect(() => openCheckpointStorage('http://u:pw@x')).toThrow("'http://u:***@x'");
    expect(() => openCheckpointStorage('')).toThrow(StorageError);
    expect(() => openCheckpointStorage('redis://h?prefix=a{b}')).toThrow(
      /must be non-empty and contain no '\{'/,
    );
    expect(() => openCheckpointStorage('redis://h:1,h:2?cluster=1', { redis: { db: 3 } })).toThrow(
      /only database 0/,
    );
  });
});
