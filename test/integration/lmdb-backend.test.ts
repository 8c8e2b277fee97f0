// The shared semantic suite on the LMDB state backend: the window and timer tests (tumbling,
// sliding and session windows with reduce, aggregate and process functions, triggers, evictors,
// late data, count windows, timers, snapshots and restores in the operator harness) run again
// with TIDEMARK_STATE_BACKEND=lmdb, the default backend of every job and harness that sets none,
// with a cache of 4 keys so that nearly every access goes through LMDB. (The keyed-state unit
// tests, the exactly-once and the rescaling properties run on both backends in their own files.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OperatorHarness } from 'tidemark/testing';
import { afterAll, expect, test } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-lmdb-suite-'));
process.env.TIDEMARK_STATE_BACKEND = 'lmdb';
process.env.TIDEMARK_STATE_DIR = dir;
process.env.TIDEMARK_STATE_CACHE_ENTRIES = '4';
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('jobs and harnesses that set no state backend run on LMDB here', () => {
  const h = OperatorHarness.forOneInput((s: import('tidemark').DataStream<number>) =>
    s.keyBy((x) => x).map((x) => x),
  );
  const keyed = (h as unknown as { runtime: { keyed?: { kind: string; path?: string } } }).runtime.keyed;
  expect(keyed?.kind).toBe('lmdb');
  expect(keyed?.path?.startsWith(dir)).toBe(true);
  h.close();
});

await import('../unit/window-operator.test.js');
await import('../unit/window-operator-sessions.test.js');
await import('../unit/triggers.test.js');
await import('../unit/harness.test.js');
await import('./windows-event-time.test.js');
await import('./windows-triggers.test.js');
await import('./count-windows.test.js');
await import('./two-input.test.js');
