import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Collector,
  JobFailedError,
  type KeyedProcessContext,
  KeyedProcessFunction,
  ManualClock,
  OutputTag,
  RichMapFunction,
  type RuntimeContext,
  StreamExecutionEnvironment,
  UserFunctionError,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { describe, expect, test } from 'vitest';
import { waitFor, watched } from '../helpers/jobs.js';

describe('local execution', () => {
  test('a slow sink slows the source down: queues stay bounded', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 1, bufferCapacity: 16 });
    let emitted = 0;
    let consumed = 0;
    let maxInFlight = 0;
    env
      .fromGenerator((i) => i, { count: 3000 })
      .map((x) => {
        emitted++;
        return x;
      })
      .disableChaining()
      .addSink(async () => {
        consumed++;
        maxInFlight = Math.max(maxInFlight, emitted - consumed);
        await new Promise<void>((r) => setImmediate(r));
      });
    await env.execute();
    expect(consumed).toBe(3000);
    // One channel of capacity 16 between source and sink, plus the record being processed.
    expect(maxInFlight).toBeLessThanOrEqual(16 + 2);
  });

  test('a record fanned out far past the capacity is read by its consumer while it is emitted', async () => {
    // One input record emits 1000: past twice the capacity, the consumers read their channels
    // from inside the producer's step (in one thread they would otherwise wait for its end).
    const env = new StreamExecutionEnvironment({ parallelism: 1, bufferCapacity: 16 });
    let inFlight = 0;
    let maxInFlight = 0;
    const seen: number[] = [];
    const fanOut = (x: number, out: Collector<number>): void => {
      for (let i = 0; i < 1000; i++) {
        out.collect(x * 1000 + i);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
      }
    };
    env
      .fromArray([1, 2, 3])
      .flatMap(fanOut)
      .disableChaining()
      .map((v) => v)
      .disableChaining()
      .addSink((v: number) => {
        inFlight--;
        seen.push(v);
      })
      .disableChaining();
    await env.execute();
    expect(seen).toEqual([1, 2, 3].flatMap((x) => Array.from({ length: 1000 }, (_, i) => x * 1000 + i)));
    // Up to twice the capacity in the first channel, a full second one (the map, whose output is
    // full, has the sink read first), and the record in hand.
    expect(maxInFlight).toBeLessThanOrEqual(2 * 16 + 16 + 1);
  });

  test("a consumer that fails while it reads inside its producer's step fails the job as itself", async () => {
    // The producer catches what its collect throws (a chained operator's errors would come that
    // way): a consumer in another task is not its to catch, however the two interleave.
    const fanOut = (x: number, out: Collector<number>): void => {
      for (let i = 0; i < 100; i++)
        try {
          out.collect(x * 1000 + i);
        } catch {
          // dropped
        }
    };
    const env = new StreamExecutionEnvironment({ parallelism: 1, bufferCapacity: 4, jobName: 'fan-out' });
    env
      .fromArray([1])
      .flatMap(fanOut)
      .name('fan out')
      .disableChaining()
      .map((v) => {
        if (v === 1050) throw new Error('bad value');
        return v;
      })
      .name('check')
      .uid('check-values')
      .disableChaining()
      .addSink(() => {});
    await expect(env.execute()).rejects.toThrow(
      /^job 'fan-out' failed: operator 'check' \(check-values\) subtask 1\/1 of job 'fan-out': user function threw on record 1050: bad value$/,
    );
  });

  test('a user function exception fails the job, naming the operator and the record', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2, jobName: 'failing' });
    env
      .fromArray([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }])
      .map((r) => {
        if (r.id === 3) throw new Error('bad id');
        return r;
      })
      .name('validate')
      .uid('validate-ids')
      .print();
    const err = await env.execute().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JobFailedError);
    const e = err as JobFailedError;
    expect(e.message).toMatch(
      /^job 'failing' failed: operator 'validate' \(validate-ids\) subtask \d\/2 of job 'failing': user function threw on record \{"id":3\}: bad id$/,
    );
    expect(e.cause).toBeInstanceOf(UserFunctionError);
    const cause = e.cause as UserFunctionError;
    expect(cause.context).toMatchObject({
      operatorId: 'validate-ids',
      operatorName: 'validate',
      jobName: 'failing',
    });
    expect(cause.record).toBe('{"id":3}');
    expect((cause.cause as Error).message).toBe('bad id');
  });

  test.each([1, 3])(
    'a key selector returning a non-key fails the job naming the record (parallelism %i)',
    async (p) => {
      // At parallelism 1 nothing routes the records: the keyed operator finds the bad key itself.
      const env = new StreamExecutionEnvironment({ parallelism: p, jobName: 'bad-key' });
      env
        .fromArray([{ id: 1 }, { id: 2 }])
        .keyBy((r) => (r.id === 2 ? ({ id: r.id } as never) : r.id))
        .reduce((_a, b) => b)
        .name('latest')
        .collect();
      await expect(env.execute()).rejects.toThrow(
        /^job 'bad-key' failed: .*key selector returned \{"id":2\} for record \{"id":2\}, which is not a valid key|^job 'bad-key' failed: operator 'latest' .* on record \{"id":2\}: key selector returned \{"id":2\}, which is not a valid key/,
      );
    },
  );
  test('every operator of a chain counts its records in and out (main and side outputs)', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    const odd = new OutputTag<number>('odd');
    const evens = env
      .fromArray([1, 2, 3, 4, 5, 6, 7])
      .uid('numbers')
      .map((n) => n * 10)
      .uid('times-ten')
      .process({
        processElement(n: number, ctx, out: Collector<number>) {
          if (n % 20 === 0) out.collect(n);
          else ctx.output(odd, n);
        },
      })
      .uid('split');
    evens
      .filter((n) => n > 20)
      .uid('large')
      .collect();
    evens
      .getSideOutput(odd)
      .map((n) => -n)
      .uid('negate')
      .collect();
    const client = env.executeAsync();
    await client.result;
    const of = (uid: string) => client.metrics().operators.find((o) => o.operatorId === uid)!.metrics;
    expect(of('numbers')).toMatchObject({ numRecordsOut: 7 });
    expect(of('times-ten')).toMatchObject({ numRecordsIn: 7, numRecordsOut: 7 });
    expect(of('split')).toMatchObject({ numRecordsIn: 7, numRecordsOut: 3 });
    expect(of('large')).toMatchObject({ numRecordsIn: 3, numRecordsOut: 2 });
    expect(of('negate')).toMatchObject({ numRecordsIn: 4, numRecordsOut: 4 });
  });

  test('an operator fanned out to chained operators gives each of them every record, in order', async () => {
    // 2 to 4 chained targets are called by a function compiled per output, wider fan-outs by a
    // loop: both give every branch the records in order, and count them once out, once in each.
    for (const width of [1, 2, 3, 4, 5, 6]) {
      const env = new StreamExecutionEnvironment({ parallelism: 1 });
      const numbers = env
        .fromArray([1, 2, 3, 4, 5, 6, 7, 8])
        .uid('numbers')
        .map((n) => n + 1)
        .uid('plus-one');
      const branches = Array.from({ length: width }, (_, b) =>
        numbers
          .map((n) => n * 10 + b)
          .uid(`branch-${b}`)
          .collect(),
      );
      const client = env.executeAsync();
      await client.result;
      for (const [b, results] of branches.entries())
        expect(results.values, `branch ${b} of ${width}`).toEqual(
          [2, 3, 4, 5, 6, 7, 8, 9].map((n) => n * 10 + b),
        );
      const of = (uid: string) => client.metrics().operators.find((o) => o.operatorId === uid)!.metrics;
      expect(of('plus-one')).toMatchObject({ numRecordsIn: 8, numRecordsOut: 8 });
      for (let b = 0; b < width; b++)
        expect(of(`branch-${b}`)).toMatchObject({ numRecordsIn: 8, numRecordsOut: 8 });
    }
  });
  test('rich functions are opened and closed once per subtask and see their task info', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 3 });
    const opened: string[] = [];
    let closed = 0;
    class Tag extends RichMapFunction<number, string> {
      private prefix = '';
      override open(ctx: RuntimeContext) {
        const t = ctx.taskInfo;
        opened.push(`${t.operatorName}:${t.subtaskIndex}/${t.parallelism}`);
        this.prefix = `s${t.subtaskIndex}`;
      }
      map(v: number) {
        return `${this.prefix}:${v}`;
      }
      override close() {
        closed++;
      }
    }
    const out = env.fromArray([1, 2, 3, 4, 5, 6]).rebalance().map(new Tag()).name('tag').collect();
    await env.execute();
    expect(opened.sort()).toEqual(['tag:0/3', 'tag:1/3', 'tag:2/3']);
    expect(closed).toBe(3);
    expect(out.values.map((v) => Number(v.split(':')[1])).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('side outputs via typed output tags', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const odd = new OutputTag<string>('odd');
    const main = env.fromArray([1, 2, 3, 4, 5], { parallel: true }).process({
      processElement(v: number, ctx, out: Collector<number>) {
        if (v % 2 === 0) out.collect(v);
        else ctx.output(odd, `odd ${v}`);
      },
    });
    const evens = main.collect();
    const odds = main.getSideOutput(odd).collect();
    await env.execute();
    expect(evens.values.sort()).toEqual([2, 4]);
    expect(odds.values.sort()).toEqual(['odd 1', 'odd 3', 'odd 5']);
  });

  test('keyed process function with value state (deduplication)', async () => {
    class Dedup extends KeyedProcessFunction<string, { id: string; v: number }, number> {
      private seen!: ValueState<boolean>;
      override open(ctx: RuntimeContext) {
        this.seen = ctx.getState(new ValueStateDescriptor<boolean>('seen'));
      }
      processElement(e: { id: string; v: number }, ctx: KeyedProcessContext<string>, out: Collector<number>) {
        expect(ctx.getCurrentKey()).toBe(e.id);
        if (this.seen.value() === true) return;
        this.seen.update(true);
        out.collect(e.v);
      }
    }
    const input = Array.from({ length: 200 }, (_x, i) => ({ id: `k${i % 17}`, v: i }));
    for (const p of [1, 4]) {
      const env = new StreamExecutionEnvironment({ parallelism: p });
      const out = env
        .fromArray(input)
        .keyBy((e) => e.id)
        .process(new Dedup())
        .collect();
      await env.execute();
      expect(out.values.sort((a, b) => a - b)).toEqual(Array.from({ length: 17 }, (_x, i) => i));
    }
  });

  test('async iterable source: awaits between items, keeps order', async () => {
    async function* slow() {
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 1));
        yield i;
      }
    }
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    const out = env
      .fromAsyncIterable(() => slow())
      .map((x) => x * 2)
      .collect();
    await env.execute();
    expect(out.values).toEqual(Array.from({ length: 20 }, (_x, i) => i * 2));
  });

  test('an async iterable that throws fails the job', async () => {
    async function* broken() {
      yield 1;
      throw new Error('upstream gone');
    }
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    env.fromAsyncIterable(broken()).print();
    await expect(env.execute()).rejects.toThrow(/source threw: upstream gone/);
  });

  test('the rate-controlled generator follows the (manual) clock', async () => {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const seen: [number, number][] = [];
    env
      .fromGenerator((i) => i, { count: 40, ratePerSecond: 20 })
      .addSink((v) => {
        seen.push([v, clock.now()]);
      });
    const job = watched(env.executeAsync({ clock }));
    let done = false;
    const ended = () => {
      done = true;
    };
    job.result.then(ended, ended);
    while (!done) {
      await new Promise((r) => setImmediate(r));
      clock.advance(50);
    }
    await job.result;
    expect(seen.length).toBe(40);
    // 20 records/s over 2 subtasks: 10/s each; the k-th record of a subtask needs k * 100 ms.
    const perSubtask = new Map<number, number>();
    for (const [v, t] of seen) {
      const s = v < 20 ? 0 : 1;
      const k = perSubtask.get(s) ?? 0;
      perSubtask.set(s, k + 1);
      expect(t).toBeGreaterThanOrEqual(k * 100);
    }
    expect(Math.max(...seen.map(([, t]) => t))).toBeGreaterThanOrEqual(1900);
  });

  test('an unbounded job can be cancelled', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    let n = 0;
    env
      .fromGenerator((i) => i)
      .addSink(() => {
        n++;
      });
    const job = watched(env.executeAsync());
    await waitFor(() => n >= 10_000, '10,000 records', { job });
    job.cancel();
    const result = await job.result;
    expect(result.status).toBe('CANCELLED');
    expect(job.metrics().sourceRecords).toBeGreaterThanOrEqual(10_000);
  });

  test('JSON-lines file sink (one file, or part files when parallel)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-jsonl-'));
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const src = env.fromArray(
      Array.from({ length: 1000 }, (_x, i) => ({ i, big: 10n ** 20n })),
      { parallel: true },
    );
    src.writeAsJsonLines(join(dir, 'single.jsonl'));
    src.writeAsJsonLines(join(dir, 'parts')).setParallelism(2);
    await env.execute();
    const single = readFileSync(join(dir, 'single.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(single.map((r: { i: number }) => r.i).sort((a: number, b: number) => a - b)).toEqual(
      Array.from({ length: 1000 }, (_x, i) => i),
    );
    expect(single[0].big).toBe('100000000000000000000');
    const parts = readdirSync(join(dir, 'parts')).sort();
    expect(parts).toEqual(['part-0.jsonl', 'part-1.jsonl']);
    const lines = parts.flatMap((p) =>
      readFileSync(join(dir, 'parts', p), 'utf8')
        .trim()
        .split('\n'),
    );
    expect(lines.length).toBe(1000);
  });

  test('print sink writes lines with subtask prefixes when parallel', async () => {
    const lines: string[] = [];
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const s = env.fromArray(['a', 'b', 'c', 'd'], { parallel: true });
    s.print();
    s.map((x) => ({ x }))
      .print('obj')
      .setParallelism(1);
    await env.execute({ stdout: { writeLine: (l) => lines.push(l) } });
    expect(lines.filter((l) => /^[12]> [a-d]$/.test(l)).length).toBe(4);
    expect(lines.filter((l) => /^obj> \{"x":"[a-d]"\}$/.test(l)).length).toBe(4);
  });
});
