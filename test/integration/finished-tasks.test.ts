// Checkpoints after tasks finish (Flink 1.14+, FLIP-147), in one thread: a finished task no longer
// stops checkpoints; it is in them as finished, with its end state; a finished sink publishes its
// last transaction when the next checkpoint completes; and a restore runs nothing again of an
// operator that had finished everywhere. (test/e2e/finished-tasks.test.ts: the same on slots and
// task managers, with a rescale and kills.)
import { randomUUID } from 'node:crypto';
import {
  MemoryCheckpointStorage,
  type RunnerEvent,
  type SinkFunction,
  StreamExecutionEnvironment,
} from 'tidemark';
import { describe, expect, test } from 'vitest';
import { ResultCollector } from '../../runtime/execution/results.js';
import { decodeMetadata } from '../../state/snapshot/format.js';

const LONG = 3000;

/**
 * Two branches: a short one (three elements, finished at once) and a long, rate-limited keyed
 * count. `finishes` counts the short branch's sink `finish()` calls, `reads` its records.
 */
function job(storageName: string, counters: { finishes: number; reads: number }) {
  const env = new StreamExecutionEnvironment({ parallelism: 2 });
  env.enableCheckpointing(20, { retain: 1000 });
  env.setCheckpointStorage(new MemoryCheckpointStorage({ name: storageName }));
  const short = env
    .fromElements('a', 'b', 'c')
    .uid('short-source')
    .map((s) => {
      counters.reads++;
      return s.toUpperCase();
    })
    .uid('short-map');
  const finishing: SinkFunction<string> = {
    invoke() {},
    finish() {
      counters.finishes++;
    },
  };
  short.addSink(finishing).uid('short-finish');
  const shortOut = short.collectCommitted();
  const longOut = env
    .fromGenerator((i) => ({ k: `k${i % 5}`, n: 1 }), { count: LONG, ratePerSecond: 6000 })
    .uid('long-source')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .uid('long-count')
    .map((e) => `${e.k}:${e.n}`)
    .collectCommitted();
  return { env, shortOut, longOut };
}

const expectedLong = Array.from({ length: LONG }, (_x, i) => `k${i % 5}:${Math.floor(i / 5) + 1}`).sort();

describe('checkpoints after tasks finish', () => {
  test('a finished source does not stop checkpoints; it is in them as finished; a finished sink publishes at the next one', async () => {
    const name = `finished-${randomUUID()}`;
    const counters = { finishes: 0, reads: 0 };
    const { env, shortOut, longOut } = job(name, counters);
    const results = new ResultCollector();
    const shortAtCheckpoint: number[] = [];
    const events: RunnerEvent[] = [];
    const result = await env.execute({
      jobId: 'j',
      results,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'checkpoint' && !e.stats.final)
          shortAtCheckpoint.push(results.values.get(shortOut.id)?.length ?? 0);
      },
    });
    expect(result.status).toBe('FINISHED');
    expect(events.some((e) => e.type === 'checkpoint-failed')).toBe(false);
    // Checkpoints kept completing after the short branch finished: it is in them, finished.
    const storage = new MemoryCheckpointStorage({ name });
    await storage.open();
    let withFinished = 0;
    for (const info of await storage.list('j')) {
      const m = decodeMetadata(await storage.readMetadata('j', info.checkpointId), {
        jobId: 'j',
        checkpointId: info.checkpointId,
      });
      const source = m.operators.find((o) => o.operatorId === 'short-source')!;
      const long = m.operators.find((o) => o.operatorId === 'long-source')!;
      if (source.subtasks.every((s) => s.finished) && long.subtasks.some((s) => !s.finished)) withFinished++;
    }
    expect(withFinished).toBeGreaterThanOrEqual(2);
    // The short branch's sink published its records while the job ran: at a checkpoint, not at the end.
    expect(shortAtCheckpoint.slice(0, -1)).toContain(3);
    expect([...shortOut.values].sort()).toEqual(['A', 'B', 'C']);
    expect([...longOut.values].sort()).toEqual(expectedLong);
    MemoryCheckpointStorage.drop(name);
  });

  test('restored after the short branch finished: it does not run again (no read, no finish), exactly once', async () => {
    const name = `restore-finished-${randomUUID()}`;
    const counters = { finishes: 0, reads: 0 };
    const results = new ResultCollector();
    const first = job(name, counters);
    // Stopped once a checkpoint after the short branch finished (its output published) completed.
    const client = first.env.executeAsync({
      jobId: 'j',
      results,
      onEvent: (e) => {
        if (e.type === 'checkpoint' && (results.values.get(first.shortOut.id)?.length ?? 0) === 3)
          client.cancel();
      },
    });
    expect((await client.result).status).toBe('CANCELLED');
    expect(results.values.get(first.longOut.id)?.length ?? 0).toBeLessThan(LONG);
    expect(counters).toEqual({ finishes: 2, reads: 3 });

    const second = job(name, counters);
    const events: RunnerEvent[] = [];
    const result = await second.env.execute({
      jobId: 'j',
      restore: 'latest',
      results,
      onEvent: (e) => events.push(e),
    });
    expect(events.find((e) => e.type === 'restored')).toBeDefined();
    // The short branch had finished in every subtask: restored as finished, nothing of it ran.
    expect(counters).toEqual({ finishes: 2, reads: 3 });
    const shortSource = result.metrics.operators.find((o) => o.operatorId === 'short-source')!;
    expect(shortSource.metrics.numRecordsOut ?? 0).toBe(0);
    // Exactly once across both runs (committed transactions are counted once each).
    expect([...(results.values.get(second.shortOut.id) ?? [])].sort()).toEqual(['A', 'B', 'C']);
    expect([...(results.values.get(second.longOut.id) ?? [])].sort()).toEqual(expectedLong);
    MemoryCheckpointStorage.drop(name);
  });
});
