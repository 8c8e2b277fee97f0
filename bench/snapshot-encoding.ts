/**
 * How fast a whole snapshot of windowed state encodes: `keys` keys in 128 key groups, each with a
 * count in one window and that window's timer (the shape of the checkpoint benchmark's state), in
 * checkpoint format 2 (flat arrays through msgpackr) and format 3 (columns, see
 * `state/snapshot/key-group-codec.ts`), and the state alone taken from a heap backend for a
 * checkpoint, through flat arrays and straight into columns. Best of 5 runs each.
 *
 * Run alone: `node --expose-gc --import ./bench/register.mjs bench/snapshot-encoding.ts [--keys N]`
 */
import { parseArgs } from 'node:util';
import { TimeWindow } from '../operators/windows/windows.js';
import { type AggregatingState, AggregatingStateDescriptor } from '../state/descriptors.js';
import { HeapKeyedStateBackend } from '../state/heap-backend.js';
import { KeyGroupRange } from '../state/key-groups.js';
import { encode } from '../state/snapshot/format.js';
import { decodeKeyGroupSnapshot, encodeKeyGroupSnapshot } from '../state/snapshot/key-group-codec.js';
import type { KeyGroupSnapshot } from '../state/snapshot/types.js';

export interface EncodingBenchResult {
  keys: number;
  format2: { ms: number; bytes: number };
  format3: { ms: number; bytes: number };
  /** Format 3 decoded back into the snapshot's flat arrays. */
  decode3Ms: number;
  /**
   * The state alone (no timers) taken from a heap backend holding it and encoded, as a
   * checkpoint's synchronous part does for whole key groups: walked into flat arrays that the
   * encoder splits into columns, and walked straight into columns (`snapshotKeyGroupForCheckpoint`).
   */
  heapWalk: { flatMs: number; columnsMs: number; bytes: number; flatBytes: number };
}

const GROUPS = 128;

/** The snapshot of `keys` keys of a 24-hour window job, by key group. */
export function windowSnapshot(keys: number): KeyGroupSnapshot[] {
  const window = new TimeWindow(0, 24 * 3600_000);
  const perGroup = Math.ceil(keys / GROUPS);
  const out: KeyGroupSnapshot[] = [];
  for (let g = 0; g < GROUPS; g++) {
    const data: unknown[] = [];
    const timers: unknown[] = [];
    for (let k = g * perGroup; k < Math.min(keys, (g + 1) * perGroup); k++) {
      data.push(k, 1, window.namespace(), k % 7);
      // As the timer service holds them: the window object each timer was registered with.
      timers.push(k, new TimeWindow(0, 24 * 3600_000), window.maxTimestamp());
    }
    out.push({
      state: { contents: { kind: 'aggregating', namespaced: true, data } },
      timers: { 'window-timers': { event: timers, processing: [] } },
    });
  }
  return out;
}

function best(f: () => number): { ms: number; bytes: number } {
  let ms = Number.POSITIVE_INFINITY;
  let bytes = 0;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    bytes = f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, bytes };
}

export function runEncodingBench(keys = 1_000_000): EncodingBenchResult {
  const snapshot = windowSnapshot(keys);
  const format2 = best(() => snapshot.reduce((n, kg) => n + encode(kg).length, 0));
  // NOTE: fresh timer collections each run, so the codec's cache of encoded timers is not used.
  const format3 = best(() =>
    snapshot.reduce(
      (n, kg) =>
        n + encodeKeyGroupSnapshot({ ...kg, timers: { t: { ...kg.timers['window-timers']! } } }).length,
      0,
    ),
  );
  const encoded = snapshot.map((kg) => encodeKeyGroupSnapshot(kg));
  const decode3 = best(() => {
    for (const bytes of encoded) decodeKeyGroupSnapshot(bytes);
    return 0;
  });
  return { keys, format2, format3, decode3Ms: decode3.ms, heapWalk: heapWalkBench(keys) };
}

/** See {@link EncodingBenchResult.heapWalk}: a count per key in one window, as the checkpoint benchmark's job. */
function heapWalkBench(keys: number): EncodingBenchResult['heapWalk'] {
  const backend = new HeapKeyedStateBackend({
    maxParallelism: GROUPS,
    keyGroupRange: KeyGroupRange.all(GROUPS),
    now: () => 0,
    owner: 'bench',
  });
  const counts = backend.getNamespacedState<
    AggregatingState<number, number> & { setNamespace(ns: number): void }
  >(
    new AggregatingStateDescriptor<number, number, number>('slices', {
      createAccumulator: () => 0,
      add: (_e, n) => n + 1,
      getResult: (n) => n,
      merge: (a, b) => a + b,
    }),
  );
  for (let k = 0; k < keys; k++) {
    backend.setCurrentKey(k);
    counts.setNamespace(864);
    counts.add(k);
  }
  const flat = best(() => {
    let bytes = 0;
    for (let g = 0; g < GROUPS; g++)
      bytes += encodeKeyGroupSnapshot({ state: backend.snapshotKeyGroup(g), timers: {} }).length;
    return bytes;
  });
  const columns = best(() => {
    let bytes = 0;
    for (let g = 0; g < GROUPS; g++)
      bytes += encodeKeyGroupSnapshot({ state: backend.snapshotKeyGroupForCheckpoint(g), timers: {} }).length;
    return bytes;
  });
  return { flatMs: flat.ms, columnsMs: columns.ms, bytes: columns.bytes, flatBytes: flat.bytes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { keys: { type: 'string' } } });
  const r = runEncodingBench(values.keys === undefined ? undefined : Number(values.keys));
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  console.log(
    `encoding a whole snapshot of ${r.keys.toLocaleString('en-US')} windowed keys with their timers:`,
  );
  console.log(`  format 2 (flat arrays)  ${r.format2.ms.toFixed(0)} ms, ${mb(r.format2.bytes)}`);
  console.log(`  format 3 (columns)      ${r.format3.ms.toFixed(0)} ms, ${mb(r.format3.bytes)}`);
  console.log(`  format 3 decoded        ${r.decode3Ms.toFixed(0)} ms`);
  console.log(
    `the state alone, from a heap backend: walked into flat arrays and encoded ${r.heapWalk.flatMs.toFixed(0)} ms, walked into columns and encoded ${r.heapWalk.columnsMs.toFixed(0)} ms (${mb(r.heapWalk.bytes)})`,
  );
}
