// A property test that a job is parallelism-, order- and failure-invariant, in a few lines each.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import fc from 'fast-check';
import { MemoryCheckpointStorage, WatermarkStrategy } from 'tidemark';
import {
  boundedPermutations,
  checkExactlyOnce,
  checkLateDataAccounted,
  checkOrderInvariance,
  checkParallelismInvariance,
  checkStateCleanup,
  eventStreams,
  failurePlans,
  lateStreams,
  type TimedEvent,
} from 'tidemark/testing';
import { expect, test } from 'vitest';
import { type Click, GAP_MS, sessionize } from '../sessionization.js';

type Ev = TimedEvent<string, number>;
const toClick = (e: Ev): Click => ({ user: e.key, page: `/p${Math.abs(e.value) % 5}`, time: e.timestamp });
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Click>(2_000).withTimestampAssigner(
  (c) => c.time,
);
// Disorder stays within the watermark bound, so no click is late and the sessions are exact.
const clicks = eventStreams({ maxDisorderMs: 1_999, maxGapMs: 20_000, maxLength: 40 });

test('sessions do not depend on parallelism', async () => {
  await fc.assert(
    fc.asyncProperty(clicks, (events) =>
      checkParallelismInvariance(
        (env) =>
          sessionize(env.fromArray(events.map(toClick), { parallel: true, watermarks })).sessions.collect(),
        {
          parallelisms: [1, 2, 4],
        },
      ),
    ),
    { numRuns: 20 },
  );
});

test('sessions do not depend on the order of clicks within the watermark bound', async () => {
  await fc.assert(
    fc.asyncProperty(
      clicks.chain((e) => fc.tuple(fc.constant(e), boundedPermutations(e, 1_999))),
      ([a, b]) =>
        checkOrderInvariance(
          (env, input) => sessionize(env.fromArray(input.map(toClick), { watermarks })).sessions.collect(),
          [a, b],
        ),
    ),
    { numRuns: 20 },
  );
});

test('sessions are exactly once through failures and restores from checkpoints', async () => {
  // A checkpoint every quarter of the clicks read; failures after the 1st and 2nd checkpoint, in
  // the source, the sink and the storage (and at injector.point()); every restart restores.
  await fc.assert(
    fc.asyncProperty(
      eventStreams({ maxDisorderMs: 1_999, maxGapMs: 20_000, minLength: 8, maxLength: 40 }),
      async (events) => {
        const report = await checkExactlyOnce(
          (env, injector) =>
            sessionize(
              env.fromArray(events.map(toClick), { parallel: true, watermarks }).map((c) => {
                injector.point(); // a failure may strike here too
                return c;
              }),
            ).sessions.collectCommitted(),
          { storage: () => new MemoryCheckpointStorage() },
        );
        expect(report.restoredFrom.length).toBeGreaterThan(0);
      },
    ),
    { numRuns: 20 },
  );
});

test('and through arbitrary failure plans, at parallelism 1 to 3', async () => {
  await fc.assert(
    fc.asyncProperty(
      eventStreams({ maxDisorderMs: 1_999, maxGapMs: 20_000, minLength: 8, maxLength: 40 }),
      failurePlans(),
      fc.integer({ min: 1, max: 3 }),
      async (events, failures, parallelism) => {
        await checkExactlyOnce(
          (env) =>
            sessionize(
              env.fromArray(events.map(toClick), { parallel: true, watermarks }),
            ).sessions.collectCommitted(),
          { storage: () => new MemoryCheckpointStorage(), failures, parallelism },
        );
      },
    ),
    { numRuns: 20 },
  );
});

test('sessions leave no state behind once the watermark is a gap past the last click', async () => {
  await fc.assert(
    fc.asyncProperty(clicks, (events) =>
      checkStateCleanup((_env, input) => sessionize(input.map(toClick)).sessions.collect(), events, {
        horizonMs: GAP_MS, // the session gap (no allowed lateness)
        maxOutOfOrdernessMs: 1_999,
      }),
    ),
    { numRuns: 20 },
  );
});

test('every click is counted in a session or comes out as late', async () => {
  await fc.assert(
    fc.asyncProperty(
      lateStreams({ lateProbability: 0.3, maxGapMs: 40_000, maxLatenessMs: 60_000 }),
      (stream) =>
        checkLateDataAccounted(
          (_env, input) => {
            const { sessions, late } = sessionize(input.map(toClick));
            return { results: sessions, late };
          },
          stream, // its events and watermarks; the late ones are behind a watermark
          { count: (s) => s.clicks, keyOf: (s) => s.user, lateKeyOf: (c) => c.user },
        ),
    ),
    { numRuns: 20 },
  );
});
