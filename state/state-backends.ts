/**
 * Choosing a keyed-state backend: the configuration a job carries (set with
 * `env.setStateBackend(...)`, `--state-backend` / `--state-dir`, or TIDEMARK_STATE_BACKEND /
 * TIDEMARK_STATE_DIR) and the factory the runtime creates each keyed operator subtask's backend
 * with.
 *
 * NOTE: the configuration is plain data: it travels with the job graph's overrides to slots on
 * worker threads and to task managers in other processes, each of which creates its own backends.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from './errors.js';
import { HeapKeyedStateBackend, type HeapKeyedStateBackendOptions } from './heap-backend.js';
import type { KeyedStateBackend } from './keyed-backend.js';
import { LmdbKeyedStateBackend } from './lmdb-backend.js';

/** The keyed-state backends. */
export type StateBackendKind = 'heap' | 'lmdb';

/** Which keyed-state backend a job uses, and its settings. */
export interface StateBackendConfig {
  /** `heap` (the default): state in JavaScript Maps; `lmdb`: state in an embedded LMDB database on local disk. */
  kind: StateBackendKind;
  /** lmdb: the state directory (default {@link DEFAULT_STATE_DIR}). */
  dir?: string;
  /** lmdb: keys held in the heap cache (default: an eighth of the heap limit at 512 bytes a key, see `defaultCacheEntries`). */
  cacheEntries?: number;
}

/** The default state directory of the LMDB backend: `tidemark-state` in the system's temporary directory. */
export const DEFAULT_STATE_DIR = join(tmpdir(), 'tidemark-state');

/** Checks a state backend setting (a name or a config) and returns it as a config. */
export function stateBackendConfig(
  backend: StateBackendKind | StateBackendConfig,
  options: Omit<StateBackendConfig, 'kind'> = {},
): StateBackendConfig {
  const config: StateBackendConfig =
    typeof backend === 'string' ? { kind: backend, ...options } : { ...backend };
  if (config.kind !== 'heap' && config.kind !== 'lmdb')
    throw new InvalidArgumentError(`unknown state backend '${String(config.kind)}': use 'heap' or 'lmdb'`);
  if (config.dir !== undefined && (typeof config.dir !== 'string' || config.dir === ''))
    throw new InvalidArgumentError('the state directory must be a non-empty path');
  if (config.dir !== undefined && config.kind === 'heap')
    throw new InvalidArgumentError(
      `a state directory ('${config.dir}') is for the lmdb state backend; the heap backend keeps state in memory`,
    );
  if (
    config.cacheEntries !== undefined &&
    (!Number.isInteger(config.cacheEntries) || config.cacheEntries < 1)
  )
    throw new InvalidArgumentError(`cacheEntries must be a positive integer, got ${config.cacheEntries}`);
  return config;
}

/**
 * The state backend TIDEMARK_STATE_BACKEND (with TIDEMARK_STATE_DIR and
 * TIDEMARK_STATE_CACHE_ENTRIES for lmdb) asks for, if any: the default of a job that sets none (so
 * a whole test suite can run on the LMDB backend).
 */
export function stateBackendFromEnv(env: NodeJS.ProcessEnv = process.env): StateBackendConfig | undefined {
  const kind = env.TIDEMARK_STATE_BACKEND;
  if (kind === undefined || kind === '') return undefined;
  if (kind !== 'lmdb') return stateBackendConfig(kind as StateBackendKind);
  const dir = env.TIDEMARK_STATE_DIR;
  const cache = env.TIDEMARK_STATE_CACHE_ENTRIES;
  return stateBackendConfig('lmdb', {
    ...(dir !== undefined && dir !== '' ? { dir } : {}),
    ...(cache !== undefined && cache !== '' ? { cacheEntries: Number(cache) } : {}),
  });
}

/** Creates the keyed-state backend of one operator subtask. */
export function createKeyedStateBackend(
  config: StateBackendConfig | undefined,
  options: HeapKeyedStateBackendOptions,
): KeyedStateBackend {
  if (config === undefined || config.kind === 'heap') return new HeapKeyedStateBackend(options);
  return new LmdbKeyedStateBackend({
    ...options,
    dir: config.dir ?? DEFAULT_STATE_DIR,
    ...(config.cacheEntries === undefined ? {} : { cacheEntries: config.cacheEntries }),
  });
}
