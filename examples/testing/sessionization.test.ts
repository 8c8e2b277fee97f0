// A test that replays a recorded event stream against a job's pipeline — the way to test a job.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import { readFileSync } from 'node:fs';
import { StreamExecutionEnvironment } from 'tidemark';
import { fromTestStream, TestStream } from 'tidemark/testing';
import { expect, test } from 'vitest';
import { type Click, OUT_OF_ORDER_MS, sessionize } from '../sessionization.js';

const recorded: Click[] = readFileSync(new URL('./clicks.jsonl', import.meta.url), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as Click);

test('recorded clicks become sessions; the straggler goes to the late output', async () => {
  const env = new StreamExecutionEnvironment({ parallelism: 2 });
  const clicks = fromTestStream(
    env,
    TestStream.replay(recorded, (c) => c.time, { maxOutOfOrdernessMs: OUT_OF_ORDER_MS }),
  );
  const { sessions, late } = sessionize(clicks);
  const s = sessions.collect();
  const l = late.collect();
  await env.execute();

  expect(s.values.sort((a, b) => a.start - b.start || a.user.localeCompare(b.user))).toEqual([
    // ana: 1000, 3000, 4000 (out of order, within the bound) then a gap of 41 s
    { user: 'ana', start: 1000, end: 34_000, clicks: 3, pages: 3 },
    // ben: 1500 and 20000 are 18.5 s apart: one session
    { user: 'ben', start: 1500, end: 50_000, clicks: 2, pages: 2 },
    { user: 'ana', start: 45_000, end: 75_000, clicks: 1, pages: 1 },
    { user: 'ben', start: 90_000, end: 120_000, clicks: 1, pages: 1 },
    { user: 'ana', start: 100_000, end: 130_000, clicks: 1, pages: 1 },
  ]);
  // ana's click at 2000 arrives after the watermark passed her first session's end.
  expect(l.values).toEqual([{ user: 'ana', page: '/', time: 2000 }]);
});
