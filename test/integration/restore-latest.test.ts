// `restore: 'latest'` that a supervisor can always use: a job the storage knows but none of whose
// checkpoints completed starts from the beginning; a job id the storage has never seen is an error
// (and stays one), unless `latest-or-fresh` asks for a fresh start.
import { randomUUID } from 'node:crypto';
import { MemoryCheckpointStorage, type RunnerEvent, StreamExecutionEnvironment } from 'tidemark';
import { describe, expect, test } from 'vitest';

const COUNT = 300;

function env(storageName: string): { env: StreamExecutionEnvironment; out: { values: string[] } } {
  const e = new StreamExecutionEnvironment({ parallelism: 2 });
  // A checkpoint interval no run here reaches: no checkpoint ever completes before the end.
  e.enableCheckpointing(3_600_000);
  e.setCheckpointStorage(new MemoryCheckpointStorage({ name: storageName }));
  const out = e
    .fromGenerator((i) => i, { count: COUNT })
    .keyBy((i) => i % 7)
    .map((i) => `v${i}`)
    .collectCommitted();
  return { env: e, out };
}

const expected = Array.from({ length: COUNT }, (_x, i) => `v${i}`).sort();

describe('restore latest without a completed checkpoint', () => {
  test('a job id the storage never saw: an error naming the job and the storage, and it stays unknown', async () => {
    const name = `never-${randomUUID()}`;
    for (let i = 0; i < 2; i++) {
      const { env: e } = env(name);
      const err = await e.execute({ jobId: 'typo', restore: 'latest' }).then(
        () => undefined,
        (x: unknown) => x as Error,
      );
      expect(err?.message).toMatch(
        new RegExp(
          `^job 'typo' has no completed checkpoint in memory://${name} to restore, and was never started with this storage .*latest-or-fresh`,
        ),
      );
    }
    const storage = new MemoryCheckpointStorage({ name });
    await storage.open();
    expect(await storage.currentEpoch('typo')).toBe(0);
    MemoryCheckpointStorage.drop(name);
  });

  test('a job started but stopped before its first checkpoint: starts from the beginning, with an event saying so', async () => {
    const name = `started-${randomUUID()}`;
    const first = env(name);
    const client = first.env.executeAsync({
      jobId: 'job',
      onEvent: (e) => e.type === 'running' && client.cancel(),
    });
    expect((await client.result).status).toBe('CANCELLED');
    expect(first.out.values.length).toBeLessThan(COUNT);

    const second = env(name);
    const events: RunnerEvent[] = [];
    const result = await second.env.execute({
      jobId: 'job',
      restore: 'latest',
      onEvent: (e) => events.push(e),
    });
    expect(result.status).toBe('FINISHED');
    expect(events.filter((e) => e.type === 'fresh-start')).toEqual([
      { type: 'fresh-start', jobId: 'job', storage: `memory://${name}`, started: true },
    ]);
    expect(events.some((e) => e.type === 'restored')).toBe(false);
    expect([...second.out.values].sort()).toEqual(expected);
    MemoryCheckpointStorage.drop(name);
  });

  test("'latest-or-fresh': a fresh start for an unknown job, the latest checkpoint when there is one", async () => {
    const name = `fresh-${randomUUID()}`;
    const first = env(name);
    const events: RunnerEvent[] = [];
    await first.env.execute({ jobId: 'new-job', restore: 'latest-or-fresh', onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'fresh-start')).toEqual([
      { type: 'fresh-start', jobId: 'new-job', storage: `memory://${name}`, started: false },
    ]);
    expect([...first.out.values].sort()).toEqual(expected);
    // The finished job left its final checkpoint: it is what `latest-or-fresh` restores now.
    const second = env(name);
    const again: RunnerEvent[] = [];
    await second.env.execute({ jobId: 'new-job', restore: 'latest-or-fresh', onEvent: (e) => again.push(e) });
    expect(again.some((e) => e.type === 'fresh-start')).toBe(false);
    expect(again.find((e) => e.type === 'restored')).toBeDefined();
    // (Its sinks may commit the final checkpoint's transactions again, idempotently: no new records.)
    expect(second.out.values.every((v) => expected.includes(v))).toBe(true);
    MemoryCheckpointStorage.drop(name);
  });
});
