// The snapshot-encoding benchmark (bench/snapshot-encoding.ts) runs, small: format 3 is smaller
// than format 2 for windowed state with timers, and what it writes decodes to the same snapshot.
import { expect, test } from 'vitest';
import { runEncodingBench, windowSnapshot } from '../../bench/snapshot-encoding.js';
import { decodeKeyGroupSnapshot, encodeKeyGroupSnapshot } from '../../state/snapshot/key-group-codec.js';

test('bench/snapshot-encoding.ts measures both formats on the same snapshot', () => {
  const r = runEncodingBench(3000);
  expect(r.keys).toBe(3000);
  expect(r.format2.bytes).toBeGreaterThan(0);
  expect(r.format3.bytes).toBeLessThan(r.format2.bytes);
  // Both walks of the heap backend write the same bytes (see the snapshot-columns property).
  expect(r.heapWalk.bytes).toBeGreaterThan(3000);
  expect(r.heapWalk.bytes).toBe(r.heapWalk.flatBytes);
  const snapshot = windowSnapshot(3000);
  expect(snapshot.reduce((n, kg) => n + kg.state.contents!.data.length / 4, 0)).toBe(3000);
  for (const kg of snapshot.slice(0, 3)) {
    const back = decodeKeyGroupSnapshot(encodeKeyGroupSnapshot(kg));
    expect(back.state).toEqual(kg.state);
    expect(back.timers['window-timers']!.event.length).toBe(kg.timers['window-timers']!.event.length);
  }
});
