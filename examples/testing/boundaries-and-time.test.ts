// Property tests that look where bugs hide: at the job's time constants (the session gap, the
// out-of-orderness bound), and in time the job should not depend on (when watermarks arrive, the
// wall clock). Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import fc from 'fast-check';
import { StreamExecutionEnvironment, WatermarkStrategy } from 'tidemark';
import {
  assertSameResults,
  checkTimingInvariance,
  checkWatermarkTimingInvariance,
  eventStreams,
  type TimedEvent,
} from 'tidemark/testing';
import { test } from 'vitest';
import { type Click, GAP_MS, OUT_OF_ORDER_MS, type Session, sessionize } from '../sessionization.js';

type Ev = TimedEvent<string, number>;
const toClick = (e: Ev): Click => ({ user: e.key, page: `/p${Math.abs(e.value) % 5}`, time: e.timestamp });
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Click>(OUT_OF_ORDER_MS).withTimestampAssigner(
  (c) => c.time,
);

// The job's time constants: gaps of exactly 30 s (and 30 s ± 1) between a user's clicks, clicks
// exactly 2 s (the bound) behind the latest one, ties.
const clicks = eventStreams({
  keys: fc.constantFrom('ana', 'ben', 'eve'),
  gapMs: GAP_MS,
  maxDisorderMs: OUT_OF_ORDER_MS,
  maxGapMs: 40_000,
  maxLength: 30,
});

/** Sessions as the specification says: a user's clicks at most 30 s apart are one session. */
function expectedSessions(cs: readonly Click[]): Session[] {
  const byUser = new Map<string, Click[]>();
  for (const c of cs) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
  const out: Session[] = [];
  for (const [user, list] of byUser) {
    list.sort((a, b) => a.time - b.time);
    let run: Click[] = [];
    for (const [i, c] of list.entries()) {
      run.push(c);
      if (i === list.length - 1 || list[i + 1]!.time - c.time > GAP_MS) {
        const start = run[0]!.time;
        const pages = new Set(run.map((r) => r.page)).size;
        out.push({ user, start, end: c.time + GAP_MS, clicks: run.length, pages });
        run = [];
      }
    }
  }
  return out;
}

test('sessions are as specified, at the gap and at the out-of-orderness bound', async () => {
  await fc.assert(
    fc.asyncProperty(clicks, async (events) => {
      const env = new StreamExecutionEnvironment({ parallelism: 2 });
      const cs = events.map(toClick);
      const out = sessionize(env.fromArray(cs, { parallel: true, watermarks })).sessions.collect();
      await env.execute();
      assertSameResults('sessions', expectedSessions(cs), out.values);
    }),
  );
});

test('sessions do not depend on when watermarks arrive', async () => {
  await fc.assert(
    fc.asyncProperty(clicks, (events) =>
      checkWatermarkTimingInvariance(
        (_env: StreamExecutionEnvironment, input) => sessionize(input).sessions.collect(),
        events.map(toClick),
        { timestampOf: (c) => c.time, maxOutOfOrdernessMs: OUT_OF_ORDER_MS },
      ),
    ),
    { numRuns: 20 },
  );
});

test('sessions do not depend on the watermark cadence or the wall clock (simulated)', async () => {
  await fc.assert(
    fc.asyncProperty(clicks, (events) =>
      checkTimingInvariance(
        (env) =>
          sessionize(env.fromArray(events.map(toClick), { parallel: true, watermarks })).sessions.collect(),
        { timeConstants: [GAP_MS] },
      ),
    ),
    { numRuns: 5 },
  );
});
