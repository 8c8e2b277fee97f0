// Runs on several slots (worker threads): the same results as in one thread, exactly-once recovery
// when a worker dies, and clear errors for records that cannot cross threads.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  buildJob,
  JobFailedError,
  MemoryCheckpointStorage,
  RestartStrategies,
  type RunnerEvent,
  StateError,
  UserFunctionError,
} from 'tidemark';
import { afterAll, describe, expect, test } from 'vitest';
import { loadJob } from '../../runtime/cli/load-job.js';
import { ROOT } from '../helpers/cli.js';
import { waitFor, watched } from '../helpers/jobs.js';

// NOTE: inside the package, so that `import ... from 'tidemark'` resolves in vitest and in workers.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-slots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function module(name: string, body: string): string {
  const file = join(dir, `${name}.mts`);
  writeFileSync(
    file,
    `import { job, TumblingEventTimeWindows, WatermarkStrategy } from 'tidemark';\n${body}\n`,
  );
  return file;
}

const windowed = module(
  'windowed',
  `export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 17), t: i * 7, v: i % 10 }), {
      count: 20000,
      watermarks: WatermarkStrategy.forBoundedOutOfOrderness(100).withTimestampAssigner((e) => e.t),
    })
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(1000))
    .aggregate({ createAccumulator: () => 0, add: (e, a) => a + e.v, getResult: (a) => a, merge: (a, b) => a + b })
    .map((s) => ({ k: s % 7, n: 1, s }))
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n, s: a.s + b.s })) // a count per key: 1, 2, 3 ... in any order
    .map((e) => e.k + '#' + e.n)
    .collectCommitted();
});`,
);

// Records cross between the slots in both directions through tiny queues: credits run out all
// the time, so every frame and credit that arrives between two passes must wake the slot.
const crossing = module(
  'crossing',
  `export default job(
  (env) => {
    const events = env.fromGenerator((i) => ({ a: i % 101, b: i % 89, t: i }), {
      count: 30000,
      watermarks: WatermarkStrategy.forMonotonousTimestamps().withTimestampAssigner((e) => e.t),
    });
    const byA = events.keyBy((e) => e.a).window(TumblingEventTimeWindows.of(500))
      .aggregate({ createAccumulator: () => 0, add: (_e, n) => n + 1, getResult: (n) => n, merge: (x, y) => x + y });
    const byB = events.keyBy((e) => e.b).window(TumblingEventTimeWindows.of(700))
      .aggregate({ createAccumulator: () => 0, add: (_e, n) => n + 1, getResult: (n) => n, merge: (x, y) => x + y });
    byA.union(byB)
      .map((n) => ({ k: n % 2, s: n }))
      .keyBy((r) => r.k)
      .reduce((x, y) => ({ k: x.k, s: x.s + y.s }))
      .map((r) => r.k + ':' + r.s)
      .collectCommitted();
  },
  { bufferCapacity: 4 },
);`,
);

const printed = module(
  'printed',
  `export default job((env) => {
  const counts = env.fromGenerator((i) => 'w' + (i % 50), { count: 5000 })
    .map((word) => ({ word, n: 1 }))
    .keyBy((r) => r.word)
    .reduce((a, b) => ({ word: a.word, n: a.n + b.n }));
  counts.print();
  counts.printSummary((r) => r.word, (r) => r.n);
});`,
);

async function run(
  file: string,
  options: {
    slots: number;
    parallelism: number;
    checkpointMs?: number;
    kill?: boolean;
    stdout?: { writeLine(line: string): void };
  },
) {
  const loaded = await loadJob(file);
  const overrides = { jobName: loaded.name, parallelism: options.parallelism };
  const env = await buildJob(loaded.definition, overrides);
  if (options.checkpointMs !== undefined) {
    env.enableCheckpointing(options.checkpointMs);
    env.setCheckpointStorage(new MemoryCheckpointStorage());
    env.setRestartStrategy(RestartStrategies.fixedDelay(3, 0));
  }
  const events: RunnerEvent[] = [];
  const client = watched(
    env.executeAsync({
      onEvent: (e) => events.push(e),
      ...(options.stdout === undefined ? {} : { stdout: options.stdout }),
      ...(options.slots > 1
        ? { distributed: { slots: options.slots, jobPath: loaded.path, overrides } }
        : {}),
    }),
  );
  if (options.kill === true) {
    await waitFor(() => events.some((e) => e.type === 'checkpoint'), 'a checkpoint', { job: client });
    await client.killSlot(1);
  }
  const result = await client.result;
  return {
    result,
    events,
    values: [...(result.results.values().next().value ?? [])] as string[],
    restarts: client.restarts(),
  };
}

describe('several slots', () => {
  test('a keyed, windowed job gives the same results on 1 thread and on 2 and 3 slots', async () => {
    const local = await run(windowed, { slots: 1, parallelism: 3 });
    expect(local.values.length).toBeGreaterThan(100);
    for (const slots of [2, 3]) {
      const r = await run(windowed, { slots, parallelism: 3 });
      expect(r.result.status).toBe('FINISHED');
      expect(r.values.sort()).toEqual([...local.values].sort());
      expect(r.result.metrics.sourceRecords).toBe(20000);
    }
  }, 60_000);

  test('records crossing both ways through tiny queues never leave the slots waiting for each other', async () => {
    // The final (largest) rolling sum per parity of the window counts: every record counted twice.
    const finals = (values: string[]) => {
      const best = new Map<string, number>();
      for (const v of values) {
        const [k, s] = v.split(':') as [string, string];
        best.set(k, Math.max(best.get(k) ?? 0, Number(s)));
      }
      return best;
    };
    const local = finals((await run(crossing, { slots: 1, parallelism: 2 })).values);
    expect([...local.values()].reduce((a, b) => a + b, 0)).toBe(60000);
    for (let i = 0; i < 3; i++) {
      const r = await run(crossing, { slots: 2, parallelism: 2 });
      expect(r.result.status).toBe('FINISHED');
      expect(r.result.metrics.sourceRecords).toBe(30000);
      expect(finals(r.values)).toEqual(local);
    }
  }, 60_000);

  test("print lines of every slot go to the run's stdout, and a summary after all of them", async () => {
    for (const slots of [1, 2, 3]) {
      const lines: string[] = [];
      const r = await run(printed, { slots, parallelism: 3, stdout: { writeLine: (l) => lines.push(l) } });
      expect(r.result.status).toBe('FINISHED');
      // Every rolling update, from each of the 3 subtasks (prefix `i> `), then the summary.
      expect(lines).toHaveLength(5001);
      const bySubtask = new Set(lines.slice(0, -1).map((l) => l.slice(0, l.indexOf('>'))));
      expect([...bySubtask].sort()).toEqual(['1', '2', '3']);
      const summary = JSON.parse(lines.at(-1)!) as Record<string, number>;
      expect(Object.keys(summary)).toHaveLength(50);
      expect(Object.values(summary).every((n) => n === 100)).toBe(true);
    }
  }, 60_000);

  test('a killed worker: the job restarts from its latest checkpoint, exactly once', async () => {
    const local = await run(windowed, { slots: 1, parallelism: 2 });
    const r = await run(windowed, { slots: 2, parallelism: 2, checkpointMs: 20, kill: true });
    expect(r.restarts).toBe(1);
    expect(r.events.find((e) => e.type === 'restart')).toMatchObject({
      error: { message: expect.stringMatching(/slot 1 \(worker thread\) exited/) },
    });
    expect(r.values.sort()).toEqual([...local.values].sort());
    // The end of the job is its final checkpoint, taken on the slots once every subtask finished.
    const checkpoints = r.events.flatMap((e) => (e.type === 'checkpoint' ? [e.stats] : []));
    expect(checkpoints.filter((c) => c.final).length).toBe(1);
    expect(checkpoints[checkpoints.length - 1]!.final).toBe(true);
  }, 60_000);

  test('every slot gets work: a run uses as many slots as its highest parallelism, a sink of parallelism 1 included', async () => {
    const file = module(
      'spread',
      `import { threadId } from 'node:worker_threads';
export default job((env) => {
  const tagged = env.fromGenerator((i) => i, { count: 4000 }).map((i) => ({ i, thread: threadId }));
  tagged.collectCommitted();
  tagged.map((r) => r.i).setParallelism(1).addSink(() => {});
});`,
    );
    const r = await run(file, { slots: 3, parallelism: 3 });
    const rows = r.values as unknown as { i: number; thread: number }[];
    expect(rows.length).toBe(4000);
    // Three slots (worker threads) ran the generator and the map, one subtask each.
    expect(new Set(rows.map((x) => x.thread)).size).toBe(3);
  }, 60_000);

  test('a record that cannot cross threads fails the job with a clear error', async () => {
    const file = module(
      'unsendable',
      `export default job((env) => {
  env.fromGenerator((i) => ({ id: i, callback: () => i }), { count: 100 }).keyBy((e) => e.id % 3).map((e) => e.id).print();
});`,
    );
    await expect(run(file, { slots: 2, parallelism: 2 })).rejects.toThrow(
      /generator.*-> map \(\d\/2\): a record cannot be sent to another worker: record\.callback is a function/,
    );
  }, 60_000);

  test('an error raised in a slot reaches the job runner as its own class, with its fields and causes', async () => {
    const file = module(
      'rejecting',
      `import { registerErrorClass } from 'tidemark';
export class OrderRejected extends Error {
  constructor(readonly orderId: number) {
    super('order ' + orderId + ' rejected');
    this.name = 'OrderRejected';
  }
}
registerErrorClass('OrderRejected', OrderRejected);
export default job((env) => {
  env.fromElements(...Array.from({ length: 100 }, (_x, i) => i))
    .keyBy((i) => i % 10)
    .map((i) => { if (i === 42) throw new OrderRejected(i); return i; })
    .collect();
});`,
    );
    const { OrderRejected } = (await import(pathToFileURL(file).href)) as {
      OrderRejected: new (id: number) => Error;
    };
    const failure: unknown = await run(file, { slots: 2, parallelism: 2 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(JobFailedError);
    const fn = (failure as Error).cause as UserFunctionError;
    expect(fn).toBeInstanceOf(UserFunctionError);
    expect(fn.code).toBe('USER_FUNCTION_FAILED');
    expect(fn.record).toBe('42');
    expect(fn.context).toMatchObject({
      jobName: 'rejecting',
      operatorName: 'map',
      subtaskIndex: expect.any(Number),
    });
    expect(fn.cause).toBeInstanceOf(OrderRejected);
    expect(fn.cause).toMatchObject({ name: 'OrderRejected', orderId: 42, message: 'order 42 rejected' });
    expect((fn.cause as Error).stack).toMatch(/rejecting\.mts/);
  }, 60_000);

  test("tidemark's own error raised in a slot keeps its class and context", async () => {
    const file = module(
      'state-off-key',
      `import { RichMapFunction, ValueStateDescriptor } from 'tidemark';
class Counting extends RichMapFunction<number, number> {
  map(n: number): number {
    this.getRuntimeContext().getState(new ValueStateDescriptor<number>('seen')).update(n);
    return n;
  }
}
export default job((env) => {
  env.fromElements(1, 2, 3).map(new Counting()).setParallelism(2).collect();
});`,
    );
    const failure: unknown = await run(file, { slots: 2, parallelism: 2 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(JobFailedError);
    const cause = (failure as Error).cause as StateError;
    expect(cause).toBeInstanceOf(StateError);
    expect(cause.code).toBe('STATE_ERROR');
    expect(cause.context).toMatchObject({ jobName: 'state-off-key', operatorName: 'map' });
    expect(cause.message).toMatch(
      /value state 'seen' is keyed state, which can only be used on a keyed stream/,
    );
  }, 60_000);

  test('a job module that builds a different graph in a worker is refused', async () => {
    const file = module(
      'unstable',
      `import { isMainThread } from 'node:worker_threads';
export default job((env) => {
  const s = env.fromElements(1, 2, 3);
  (isMainThread ? s : s.map((x) => x)).print();
});`,
    );
    await expect(run(file, { slots: 2, parallelism: 2 })).rejects.toThrow(
      /built a different plan here .* than in the job manager/,
    );
  }, 60_000);
});
