/**
 * The keyed-state backends the shared semantic suite runs against: the heap backend and the LMDB
 * backend. The LMDB one gets a cache of 2 keys, so that nearly every access goes through LMDB
 * (eviction, write-back, reload) rather than the heap cache; `lmdb-cached` one that holds every key.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { HeapKeyedStateBackend, type HeapKeyedStateBackendOptions } from '../../state/heap-backend.js';
import type { KeyedStateBackend } from '../../state/keyed-backend.js';
import { LmdbKeyedStateBackend } from '../../state/lmdb-backend.js';
import type { StateBackendConfig } from '../../state/state-backends.js';

/** A backend to test: its name and how to make one. */
export interface BackendCase {
  name: 'heap' | 'lmdb' | 'lmdb-cached';
  make(options: HeapKeyedStateBackendOptions): KeyedStateBackend;
  /** The job-level setting for `env.setStateBackend`. */
  config(): StateBackendConfig;
}

let stateDir: string | undefined;
/** A state directory for this test file (deleted after it). */
export function testStateDir(): string {
  stateDir ??= mkdtempSync(join(tmpdir(), 'tidemark-test-state-'));
  return stateDir;
}

const open: KeyedStateBackend[] = [];

afterEach(() => {
  for (const b of open.splice(0)) b.dispose();
});
afterAll(() => {
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
  stateDir = undefined;
});

/** The heap and the LMDB backend (`describe.each(BACKENDS)('$name backend', ...)`). */
export const BACKENDS: BackendCase[] = [
  {
    name: 'heap',
    make: (options) => new HeapKeyedStateBackend(options),
    config: () => ({ kind: 'heap' }),
  },
  {
    name: 'lmdb',
    make: (options) => {
      const b = new LmdbKeyedStateBackend({ ...options, dir: testStateDir(), cacheEntries: 2 });
      open.push(b);
      return b;
    },
    config: () => ({ kind: 'lmdb', dir: testStateDir(), cacheEntries: 2 }),
  },
  {
    // NOTE: a cache that holds every key: snapshots come from the cache, LMDB is written only
    // by snapshots that need it.
    name: 'lmdb-cached',
    make: (options) => {
      const b = new LmdbKeyedStateBackend({ ...options, dir: testStateDir(), cacheEntries: 1_000_000 });
      open.push(b);
      return b;
    },
    config: () => ({ kind: 'lmdb', dir: testStateDir(), cacheEntries: 1_000_000 }),
  },
];
