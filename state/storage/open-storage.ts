/**
 * {@link openCheckpointStorage}: a checkpoint storage from a URL, as a user writes it on the
 * command line or in a job's settings.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CheckpointStorage, StorageError, type StorageSpec } from './checkpoint-storage.js';
import { FileCheckpointStorage, type FileCheckpointStorageOptions } from './file.js';
import { MemoryCheckpointStorage, type MemoryCheckpointStorageOptions } from './memory.js';
import { RedisCheckpointStorage, type RedisCheckpointStorageOptions, redactUrl } from './redis.js';

/** Settings per kind of storage, used when the URL is of that kind. */
export interface OpenCheckpointStorageOptions {
  memory?: Omit<MemoryCheckpointStorageOptions, 'name'>;
  file?: FileCheckpointStorageOptions;
  redis?: Omit<RedisCheckpointStorageOptions, 'url'>;
}

/**
 * A checkpoint storage for a URL (not yet opened: call `open()`):
 * - `memory://name` (instances with the same name share data; `memory://` alone is private),
 * - `file:///absolute/path` or a plain path (relative to the working directory),
 * - `redis://[user[:password]@]host[:port][/db][?prefix=name]`, `rediss://...` for TLS, and
 *   `redis://host1:port1,host2:port2?cluster=1` for a Redis Cluster.
 */
export function openCheckpointStorage(
  url: string,
  options: OpenCheckpointStorageOptions = {},
): CheckpointStorage {
  if (typeof url !== 'string' || url.trim() === '')
    throw new StorageError('checkpoint storage: the URL is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    // NOTE: no "scheme://": a plain path (a Windows path like C:\x has no "//" either).
    if (/^[a-z][a-z0-9+.-]*:[^\\]/i.test(url) && !/^[a-z]:/i.test(url))
      throw new StorageError(`unknown checkpoint storage '${redactUrl(url)}': ${HELP}`);
    return new FileCheckpointStorage(isAbsolute(url) ? url : resolve(url), options.file);
  }
  switch (scheme) {
    case 'memory': {
      const name = decodeURIComponent(url.slice('memory://'.length));
      return new MemoryCheckpointStorage({ ...options.memory, ...(name === '' ? {} : { name }) });
    }
    case 'file': {
      let path: string;
      try {
        path = fileURLToPath(url);
      } catch (e) {
        throw new StorageError(
          `invalid file URL '${redactUrl(url)}': ${(e as Error).message} (use file:///absolute/path)`,
        );
      }
      return new FileCheckpointStorage(path, options.file);
    }
    case 'redis':
    case 'rediss':
      return new RedisCheckpointStorage({ ...options.redis, url });
    default:
      throw new StorageError(`unknown checkpoint storage scheme '${scheme}' in '${redactUrl(url)}': ${HELP}`);
  }
}

const HELP =
  'use memory://name, file:///absolute/path (or a plain path), redis://host:port, rediss://host:port (TLS) or redis://host1:port1,host2:port2?cluster=1';

/**
 * The same storage opened only for its leader leases (a file storage does not sweep on open),
 * from a URL or another instance.
 */
export function openLeaseStorage(from: string | CheckpointStorage): CheckpointStorage | undefined {
  if (typeof from === 'string') return openCheckpointStorage(from, { file: { sweepOnOpen: false } });
  const spec = from.leases === undefined ? undefined : from.writerSpec?.();
  if (spec === undefined) return undefined;
  return openStorageSpec(
    spec.kind === 'file' ? { ...spec, options: { ...spec.options, sweepOnOpen: false } } : spec,
  );
}

/** Opens (constructs) a storage from its {@link StorageSpec}, in another thread or process. */
export function openStorageSpec(spec: StorageSpec): CheckpointStorage {
  if (spec.kind === 'file')
    return new FileCheckpointStorage(spec.dir, spec.options as FileCheckpointStorageOptions);
  return new RedisCheckpointStorage(spec.options as RedisCheckpointStorageOptions);
}
