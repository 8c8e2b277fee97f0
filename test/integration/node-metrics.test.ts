// Node's own figures per slot (observe/node-metrics.ts): event-loop delay, GC pauses and heap of
// every slot's worker thread and of the job manager's thread, through JobClient.metrics().
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildJob, type JobMetricsSnapshot } from 'tidemark';
import { afterAll, describe, expect, test } from 'vitest';
import { loadJob } from '../../runtime/cli/load-job.js';
import { runTaskManager, TaskManagerPool } from '../../runtime/distributed/task-manager.js';
import { NodeMetricsSampler, type NodeMetricsSnapshot } from '../../runtime/observe/node-metrics.js';
import { ROOT } from '../helpers/cli.js';
import { waitFor, watched } from '../helpers/jobs.js';
import { freePort } from '../setup/redis.js';

// NOTE: inside the package, so that `import ... from 'tidemark'` resolves in vitest and in workers.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-node-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Subtask 1 of the map (in slot 1) blocks its thread for 300 ms every 40 records.
const busy = join(dir, 'busy.mts');
writeFileSync(
  busy,
  `import { job, RichMapFunction } from 'tidemark';
class Busy extends RichMapFunction {
  n = 0;
  map(v) {
    if (this.getRuntimeContext().taskInfo.subtaskIndex === 1 && ++this.n % 40 === 0) {
      const end = Date.now() + 300;
      while (Date.now() < end);
    }
    return v;
  }
}
export default job((env) => {
  env.fromGenerator((i) => ({ i, pad: 'x'.repeat(i % 100) }), { ratePerSecond: 200 })
    .map(new Busy())
    .filter(() => false)
    .print();
});
`,
);

function plausible(s: NodeMetricsSnapshot | undefined, thread: 'main' | 'worker'): NodeMetricsSnapshot {
  expect(s).toBeDefined();
  const m = s!;
  expect(m.thread).toBe(thread);
  expect(m.pid).toBe(process.pid);
  expect(m.heap.usedBytes).toBeGreaterThan(0);
  expect(m.heap.totalBytes).toBeGreaterThanOrEqual(m.heap.usedBytes);
  expect(m.heap.limitBytes).toBeGreaterThan(m.heap.totalBytes);
  expect(m.rssBytes).toBeGreaterThan(m.heap.usedBytes);
  for (const v of Object.values(m.eventLoopDelayMs)) expect(v).toBeGreaterThanOrEqual(0);
  expect(m.eventLoopDelayMs.max).toBeGreaterThanOrEqual(m.eventLoopDelayMs.p50);
  expect(m.eventLoopUtilization).toBeGreaterThanOrEqual(0);
  expect(m.eventLoopUtilization).toBeLessThanOrEqual(1);
  expect(m.gc.count).toBeGreaterThanOrEqual(0);
  expect(m.gc.pauseMs).toBeGreaterThanOrEqual(0);
  expect(m.windowMs).toBeGreaterThan(0);
  return m;
}

describe("Node's metrics per slot", () => {
  test('a sampler reports the delay of a loop blocked in a synchronous loop, and its heap', async () => {
    // NOTE: within its first window, the figures of the window so far.
    const sampler = new NodeMetricsSampler(5000).start();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const end = Date.now() + 250;
      while (Date.now() < end);
      await new Promise((r) => setTimeout(r, 100));
      const s = plausible(sampler.snapshot(), 'main');
      expect(s.eventLoopDelayMs.max).toBeGreaterThan(150);
    } finally {
      sampler.stop();
    }
    expect(sampler.running).toBe(false);
  });

  test('a job on 2 slots: heap and event-loop delay of each slot and of the job manager; the busy slot shows a large delay', async () => {
    const loaded = await loadJob(busy);
    const overrides = { jobName: loaded.name, parallelism: 2 };
    const env = await buildJob(loaded.definition, overrides);
    const client = watched(env.executeAsync({ distributed: { slots: 2, jobPath: loaded.path, overrides } }));
    let m: JobMetricsSnapshot | undefined;
    await waitFor(
      () => {
        m = client.metrics();
        const slots = m.runtime?.slots ?? [];
        return slots.length === 2 && slots[1]!.thread.eventLoopDelayMs.max > 200;
      },
      'both slots to report, slot 1 with a large event-loop delay',
      { job: client },
    );
    const runtime = m!.runtime!;
    plausible(runtime.jobManager, 'main');
    const [s0, s1] = runtime.slots;
    expect(s0!.slot).toBe(0);
    expect(s1!.slot).toBe(1);
    plausible(s0!.thread, 'worker');
    plausible(s1!.thread, 'worker');
    // Slots in this process: no task manager process of their own.
    expect(s0!.process).toBeUndefined();
    expect(s0!.thread.threadId).not.toBe(s1!.thread.threadId);
    expect(s1!.thread.eventLoopDelayMs.max).toBeGreaterThan(200);
    // The operator metrics are unchanged beside them.
    expect(m!.operators.length).toBeGreaterThan(0);
    client.cancel();
    const result = await client.result;
    expect(result.status).toBe('CANCELLED');
  }, 60_000);

  test("slots of a task manager carry the figures of the task manager process's main thread", async () => {
    const token = 'node-metrics-test-token';
    const port = await freePort();
    const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, token, 1);
    const tm = runTaskManager({ jobManager: `127.0.0.1:${port}`, slots: 2, token });
    const pool = await listening;
    try {
      const loaded = await loadJob(busy);
      const overrides = { jobName: loaded.name, parallelism: 2 };
      const env = await buildJob(loaded.definition, overrides);
      const client = watched(
        env.executeAsync({ distributed: { slots: 2, jobPath: loaded.path, overrides, provider: pool } }),
      );
      let m: JobMetricsSnapshot | undefined;
      await waitFor(
        () => {
          m = client.metrics();
          return (m.runtime?.slots ?? []).filter((s) => s.process !== undefined).length === 2;
        },
        "both slots to report with their task manager's figures",
        { job: client },
      );
      for (const s of m!.runtime!.slots) {
        plausible(s.thread, 'worker');
        // The task manager runs in this process here (its main thread).
        plausible(s.process, 'main');
      }
      client.cancel();
      await client.result;
    } finally {
      pool.shutdown('test over');
      await tm;
    }
  }, 60_000);
});
