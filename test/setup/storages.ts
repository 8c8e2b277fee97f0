/**
 * The three checkpoint storages set up for the shared contract and property tests, each with the
 * test-only powers the tests need: a second instance on the same data (another process), damaging
 * a stored chunk, and looking at a chunk's stored state.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import { encodeName, FileCheckpointStorage } from '../../state/storage/file.js';
import { MemoryCheckpointStorage } from '../../state/storage/memory.js';
import { RedisCheckpointStorage, type RedisCheckpointStorageOptions } from '../../state/storage/redis.js';

/** The kinds of storage. */
export type StorageKind = 'memory' | 'file' | 'redis';

/** Every kind, for `describe.each`. */
export const STORAGE_KINDS: StorageKind[] = ['memory', 'file', 'redis'];

/** How a chunk is stored: gone, stored for good, or (Redis) stored with an expiry. */
export type ChunkState = 'absent' | 'stored' | 'expiring';

/** A storage under test with its test-only powers. */
export interface StorageHarness {
  kind: StorageKind;
  /** An opened storage. */
  storage: CheckpointStorage;
  /** Another opened instance on the same data, like a second process. */
  another(): Promise<CheckpointStorage>;
  /** Flips the bits of the stored byte at `offset` (0 = the header's first byte). */
  damageChunk(jobId: string, chunkId: string, offset: number): Promise<void>;
  chunkState(jobId: string, chunkId: string): Promise<ChunkState>;
  /** Closes every instance and removes all data. */
  cleanup(): Promise<void>;
}

/** Options of {@link createHarness}. */
export interface HarnessOptions {
  /** Memory and file: grace period of abandoned chunks (default: the storage's). */
  graceMs?: number;
  /** File: fsync (default true). */
  fsync?: boolean;
  /** Redis: the server (tests pass `inject('redisUrl')`). */
  redisUrl?: string;
  /** Redis: more options. */
  redis?: Omit<RedisCheckpointStorageOptions, 'url' | 'keyPrefix'>;
}

/** The Redis key of a chunk (the documented layout, spelled out independently of the storage). */
export function redisChunkKey(prefix: string, jobId: string, chunkId: string): string {
  return `${prefix}:{${jobId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}}:chunk:${chunkId}`;
}

/** Deletes every key under `<prefix>:` (on every master of a cluster). */
export async function deleteRedisPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}

/** Creates and opens a storage of that kind, isolated from every other test. */
export async function createHarness(
  kind: StorageKind,
  options: HarnessOptions = {},
): Promise<StorageHarness> {
  const instances: CheckpointStorage[] = [];
  const opened = async (s: CheckpointStorage) => {
    await s.open();
    instances.push(s);
    return s;
  };
  const closeAll = async () => {
    for (const s of instances) await s.close();
  };
  if (kind === 'memory') {
    const name = `test-${randomUUID()}`;
    const make = () =>
      new MemoryCheckpointStorage({
        name,
        ...(options.graceMs === undefined ? {} : { abandonedChunkGraceMs: options.graceMs }),
      });
    const storage = (await opened(make())) as MemoryCheckpointStorage;
    return {
      kind,
      storage,
      another: () => opened(make()),
      async damageChunk(jobId, chunkId, offset) {
        const bytes = storage.storedChunkBytes(jobId, chunkId);
        if (bytes === undefined) throw new Error(`no chunk ${chunkId}`);
        bytes[offset] = (bytes[offset] ?? 0) ^ 0xff;
      },
      async chunkState(jobId, chunkId) {
        return storage.storedChunkBytes(jobId, chunkId) === undefined ? 'absent' : 'stored';
      },
      async cleanup() {
        await closeAll();
        MemoryCheckpointStorage.drop(name);
      },
    };
  }
  if (kind === 'file') {
    const dir = await mkdtemp(join(tmpdir(), 'tidemark-file-storage-'));
    const make = () =>
      new FileCheckpointStorage(dir, {
        ...(options.graceMs === undefined ? {} : { abandonedChunkGraceMs: options.graceMs }),
        ...(options.fsync === undefined ? {} : { fsync: options.fsync }),
      });
    const chunkPath = (jobId: string, chunkId: string) =>
      join(dir, encodeName(jobId, 'job'), 'chunks', encodeName(chunkId, 'chunk'));
    return {
      kind,
      storage: await opened(make()),
      another: () => opened(make()),
      async damageChunk(jobId, chunkId, offset) {
        const path = chunkPath(jobId, chunkId);
        const bytes = await readFile(path);
        bytes[offset] = (bytes[offset] ?? 0) ^ 0xff;
        await writeFile(path, bytes);
      },
      async chunkState(jobId, chunkId) {
        try {
          await readFile(chunkPath(jobId, chunkId));
          return 'stored';
        } catch {
          return 'absent';
        }
      },
      async cleanup() {
        await closeAll();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const url = options.redisUrl;
  if (url === undefined) throw new Error('createHarness(redis): give options.redisUrl');
  const prefix = `test-${randomUUID()}`;
  const make = () => new RedisCheckpointStorage({ ...options.redis, url, keyPrefix: prefix });
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  return {
    kind,
    storage: await opened(make()),
    another: () => opened(make()),
    async damageChunk(jobId, chunkId, offset) {
      const key = redisChunkKey(prefix, jobId, chunkId);
      const current = await admin.getrangeBuffer(key, offset, offset);
      if (current.length !== 1) throw new Error(`no byte ${offset} in ${key}`);
      await admin.setrange(key, offset, Buffer.from([(current[0] ?? 0) ^ 0xff]));
    },
    async chunkState(jobId, chunkId) {
      const ttl = await admin.pttl(redisChunkKey(prefix, jobId, chunkId));
      return ttl === -2 ? 'absent' : ttl === -1 ? 'stored' : 'expiring';
    },
    async cleanup() {
      await closeAll();
      await deleteRedisPrefix(admin, prefix);
      admin.disconnect();
    },
  };
}
