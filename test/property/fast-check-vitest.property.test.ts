// The toolkit works with @fast-check/vitest as well as with plain fc.assert.
import { fc, test } from '@fast-check/vitest';
import { checkParallelismInvariance, eventStreams, lateStreams } from 'tidemark/testing';
import { expect } from 'vitest';

test.prop([eventStreams({ maxDisorderMs: 500 })], { numRuns: 15 })(
  'a keyed sum is parallelism-invariant',
  async (events) => {
    await checkParallelismInvariance(
      (env) =>
        env
          .fromArray(events, { parallel: true })
          .keyBy((e) => e.key)
          .reduce((a, b) => ({ ...b, value: a.value + b.value }))
          .collect(),
      { normalize: (v) => [...new Map(v.map((e) => [e.key, e.value]))].sort(), parallelisms: [1, 3] },
    );
  },
);

test.prop([lateStreams({ lateProbability: 0.3 }), fc.integer({ min: 0, max: 10 })], { numRuns: 30 })(
  'late streams mark exactly the events behind a watermark',
  (s, _unused) => {
    let wm = Number.NEGATIVE_INFINITY;
    for (const step of s.steps) {
      if ('watermark' in step) wm = Math.max(wm, step.watermark);
      else expect(s.late.includes(step.event)).toBe(step.event.timestamp <= wm);
    }
  },
);
