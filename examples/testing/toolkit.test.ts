// The rest of the testing toolkit on the sessionization job: a scripted TestStream on a manual
// clock, parallel scripts, late data from `lateStreams`, seeds of the deterministic simulation,
// rescaling an operator's state, per-key sequences, and the helpers that make failures readable.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import fc from 'fast-check';
import { job, StreamExecutionEnvironment, WatermarkStrategy } from 'tidemark';
import {
  assertSameResults,
  canonical,
  checkInterleavingInvariance,
  checkRescaling,
  diffResults,
  formatEvents,
  formatHarnessEvent,
  fromTestStream,
  type HarnessStep,
  KeySequenceChecker,
  lateStreams,
  ManualClock,
  SeededRandom,
  SimulationFailure,
  simulate,
  simulateJob,
  TestStream,
  type TimedEvent,
} from 'tidemark/testing';
import { expect, test } from 'vitest';
import { type Click, GAP_MS, OUT_OF_ORDER_MS, sessionize } from '../sessionization.js';

type Ev = TimedEvent<string, number>;
const toClick = (e: Ev): Click => ({ user: e.key, page: `/p${Math.abs(e.value) % 5}`, time: e.timestamp });
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Click>(OUT_OF_ORDER_MS).withTimestampAssigner(
  (c) => c.time,
);
const clicks: Click[] = [
  { user: 'ana', page: '/', time: 1_000 },
  { user: 'ben', page: '/', time: 1_500 },
  { user: 'ana', page: '/a', time: 20_000 },
  { user: 'ben', page: '/b', time: 60_000 },
  { user: 'ana', page: '/', time: 90_000 },
];

test('TestStream: a script with watermarks, idleness and processing time, on a ManualClock; two scripts in parallel', async () => {
  const env = new StreamExecutionEnvironment({ parallelism: 2 });
  const first = TestStream.create<Click>()
    .addElement(clicks[0]!, 1_000)
    .addElements([clicks[2]!, 20_000])
    .advanceWatermarkTo(40_000)
    .advanceProcessingTime(60_000) // waits until everything before it was processed
    .markIdle(); // this split stops holding the watermark back
  const second = TestStream.create<Click>().addElement(clicks[1]!, 1_500).advanceWatermarkToInfinity();
  const out = sessionize(fromTestStream(env, [first, second])).sessions.collect();
  const clock = new ManualClock(0);
  await env.execute({ clock });
  expect(clock.now()).toBeGreaterThanOrEqual(60_000);
  expect(out.values.map((s) => `${s.user} ${s.start}-${s.end} ${s.clicks}`).sort()).toEqual([
    'ana 1000-50000 2',
    'ben 1500-31500 1',
  ]);
});

test('lateStreams: every click is in a session or in the late output, and only late clicks are late', async () => {
  await fc.assert(
    fc.asyncProperty(
      lateStreams({
        keys: fc.constantFrom('ana', 'ben'),
        gapMs: GAP_MS,
        maxGapMs: 20_000, // time moves on fast enough for sessions to close
        maxLatenessMs: 2 * GAP_MS, // and late clicks go far enough back to miss theirs
        maxLength: 20,
      }),
      async (s) => {
        const env = new StreamExecutionEnvironment({ parallelism: 1 });
        const { sessions, late } = sessionize(fromTestStream(env, s.toTestStream()).map(toClick));
        const ss = sessions.collect();
        const ls = late.collect();
        await env.execute();
        const inSessions = ss.values.reduce((n, x) => n + x.clicks, 0);
        expect(inSessions + ls.values.length).toBe(s.steps.filter((x) => 'event' in x).length);
        const lateOnes = new Set(s.late.map((e) => JSON.stringify(toClick(e))));
        for (const c of ls.values) expect(lateOnes).toContain(JSON.stringify(c));
      },
    ),
    { numRuns: 50 },
  );
});

test('simulate, simulateJob and checkInterleavingInvariance: seeds decide the schedule, failures name their seed', async () => {
  const build = (env: StreamExecutionEnvironment) =>
    sessionize(env.fromArray(clicks, { parallel: true, watermarks })).sessions.collect();
  const a = await simulate(build, { seed: 7, parallelism: 3, trace: true });
  const b = await simulate(build, { seed: 7, parallelism: 3, trace: true });
  expect(b.trace).toEqual(a.trace); // the same seed, the same run
  expect(canonical(b.built.values)).toEqual(canonical(a.built.values));
  await checkInterleavingInvariance(build, { seeds: [1, 2, 3], parallelism: 3, maxClockJumpMs: 120_000 });

  // A whole job module (what `tidemark simulate` runs), and a failing one.
  const definition = job((env) => {
    sessionize(env.fromArray(clicks, { watermarks })).sessions.print('session');
  });
  const lines: string[] = [];
  const r = await simulateJob(definition, { seed: 1, stdout: { writeLine: (l) => lines.push(l) } });
  expect(r.result.status).toBe('FINISHED');
  expect(lines.filter((l) => l.startsWith('session'))).toHaveLength(4);
  const failing = (env: StreamExecutionEnvironment) =>
    env
      .fromArray(clicks)
      .map((c) => {
        if (c.time === 60_000) throw new Error('a bad click');
        return c;
      })
      .collect();
  const failure = await simulate(failing, { seed: 3 }).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(SimulationFailure);
  expect((failure as SimulationFailure).seed).toBe(3);
  expect((failure as Error).message).toMatch(/replay it with simulate\(build, \{ seed: 3/);
});

test('checkRescaling: the session operator, snapshotted at parallelism 2 and restored at 3 midway', async () => {
  const steps: HarnessStep<Click>[] = [
    ...clicks.slice(0, 3).map((c) => ({ element: c, timestamp: c.time })),
    { watermark: 30_000 },
    ...clicks.slice(3).map((c) => ({ element: c, timestamp: c.time })),
  ];
  for (const splitAt of [0, 2, 4, steps.length])
    await checkRescaling((s) => sessionize(s).sessions, steps, { from: 2, to: 3, splitAt });
});

test("KeySequenceChecker: each user's running session count goes up by one, in order", async () => {
  const env = new StreamExecutionEnvironment({ parallelism: 2 });
  const checker = new KeySequenceChecker<string>();
  sessionize(env.fromArray(clicks, { parallel: true, watermarks }))
    .sessions.map((s) => ({ user: s.user, n: 1 }))
    .keyBy((s) => s.user)
    .reduce((x, y) => ({ user: x.user, n: x.n + y.n }))
    .addSink(checker.sink((s) => [s.user, s.n]));
  await env.execute();
  checker.assertValid(
    new Map([
      ['ana', 2],
      ['ben', 2],
    ]),
  );
  checker.observe('ana', 4); // one update missing
  expect(checker.violations()).toEqual(['key "ana": 4 after 2 (1 missing)']);
});

test('readable failures: canonical, diffResults, assertSameResults, formatEvents, formatHarnessEvent, SeededRandom', () => {
  const expected = [{ user: 'ana', clicks: 2 }];
  const actual = [
    { clicks: 2, user: 'ana' },
    { user: 'ben', clicks: 1 },
  ];
  expect(canonical(actual)).toEqual(['{"clicks":1,"user":"ben"}', '{"clicks":2,"user":"ana"}']);
  expect(diffResults(canonical(expected), canonical(actual))).toContain(
    'unexpected (produced, not expected) 1',
  );
  expect(() => assertSameResults('sessions', expected, actual)).toThrow(
    /sessions:\n {2}1 expected, 2 actual/,
  );
  expect(formatEvents([{ key: 'ana', value: 3, timestamp: 1_000 }])).toBe('ana:3@1000');
  expect(
    [{ record: 'x', timestamp: 5 }, { watermark: 9 }, { watermarkStatus: 'IDLE' as const }].map(
      formatHarnessEvent,
    ),
  ).toEqual(['"x"@5', 'WM(9)', 'IDLE']);
  const r1 = new SeededRandom(42);
  const r2 = new SeededRandom(42);
  expect([r1.int(100), r1.next(), r1.chance(0.5)]).toEqual([r2.int(100), r2.next(), r2.chance(0.5)]);
});
