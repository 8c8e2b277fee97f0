// A user's mistakes raise errors of tidemark's hierarchy, with a stable code, and keep their
// place in the chain when they happen inside a running job: the job's failure, the failing user
// function (operator, subtask, record), and the mistake itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CountTrigger,
  FileSource,
  InvalidArgumentError,
  InvalidGraphError,
  InvalidRecordError,
  JobFailedError,
  job,
  ListStateDescriptor,
  ManualClock,
  OutputTag,
  type ProcessContext,
  ProcessFunction,
  RestartStrategies,
  RichMapFunction,
  StateError,
  StreamExecutionEnvironment,
  TidemarkError,
  UserFunctionError,
  ValueStateDescriptor,
} from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';

/** The error and its causes, outermost first. */
function chain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let cur = e; cur !== undefined; cur = cur instanceof Error ? cur.cause : undefined) out.push(cur);
  return out;
}

async function failureOf(env: StreamExecutionEnvironment): Promise<unknown[]> {
  const failure = await env.execute().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(failure).toBeInstanceOf(JobFailedError);
  return chain(failure);
}

const dir = mkdtempSync(join(tmpdir(), 'tidemark-user-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bad arguments', () => {
  const env = () => StreamExecutionEnvironment.create();
  const cases: [string, () => unknown, RegExp][] = [
    ['parallelism 0', () => env().setParallelism(0), /parallelism must be a positive integer, got 0/],
    [
      'a key selector that is not a function',
      () =>
        env()
          .fromElements(1)
          .keyBy(3 as never),
      /keyBy\(\)/,
    ],
    [
      'an empty uid',
      () =>
        env()
          .fromElements(1)
          .map((x) => x)
          .uid(''),
      /uid\(\) needs a non-empty string/,
    ],
    ['an empty output tag id', () => new OutputTag(''), /non-empty id/],
    ['CountTrigger.of(0)', () => CountTrigger.of(0), /maxCount must be a positive integer/],
    ['a state descriptor without a name', () => new ValueStateDescriptor(''), /non-empty name/],
    ['a clock that goes back', () => new ManualClock(10).advance(-1), /cannot go back/],
    ['a negative restart count', () => RestartStrategies.fixedDelay(-1, 0), /.+/],
    ['a zero checkpoint interval', () => env().enableCheckpointing(0), /must be positive, got 0/],
    ['job() of a non-function', () => job(42 as never), /job\(\) needs a function/],
    [
      'a harness subtask out of range',
      () => OperatorHarness.forOneInput((s) => s.map((x) => x), { parallelism: 2, subtaskIndex: 2 }),
      /subtaskIndex 2 is not in \[0, 2\)/,
    ],
  ];
  test.each(cases)('%s is an InvalidArgumentError', (_what, call, message) => {
    let thrown: unknown;
    try {
      call();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect(thrown).toMatchObject({ code: 'INVALID_ARGUMENT', name: 'InvalidArgumentError' });
    expect((thrown as Error).message).toMatch(message);
  });

  test('connecting a keyed and a non-keyed stream is an InvalidGraphError', () => {
    const e = env();
    const keyed = e.fromElements(1).keyBy((x) => x);
    expect(() => keyed.connect(e.fromElements(2))).toThrow(InvalidGraphError);
  });
});

describe('mistakes inside a running job', () => {
  test('timers on a non-keyed stream: the function fails with a StateError', async () => {
    const env = StreamExecutionEnvironment.create();
    env
      .fromElements(1, 2)
      .process(
        new (class extends ProcessFunction<number, number> {
          processElement(v: number, ctx: ProcessContext): void {
            ctx.timerService().registerProcessingTimeTimer(v);
          }
        })(),
      )
      .collect();
    const [, fn, mistake] = await failureOf(env);
    expect(fn).toBeInstanceOf(UserFunctionError);
    expect(fn).toMatchObject({ record: '1', context: { operatorName: 'process', subtaskIndex: 0 } });
    expect(mistake).toBeInstanceOf(StateError);
    expect(mistake).toMatchObject({ code: 'STATE_ERROR', message: expect.stringMatching(/keyed streams/) });
  });

  test('a key selector that returns no key: an InvalidRecordError, with the record', async () => {
    for (const parallelism of [1, 2]) {
      const env = StreamExecutionEnvironment.create({ parallelism });
      env
        .fromElements({ id: 1 }, { id: 2 })
        .keyBy((r) => ({ nested: r.id }) as never)
        .map((r) => r.id)
        .collect();
      const errors = await failureOf(env);
      const fn = errors.find((e) => e instanceof UserFunctionError) as UserFunctionError;
      expect(fn.message).toMatch(/key selector/);
      expect(fn.record).toMatch(/"id":\d/);
      expect(errors.at(-1)).toBeInstanceOf(InvalidRecordError);
      expect(errors.at(-1)).toMatchObject({ code: 'INVALID_RECORD' });
    }
  });

  test('null in list state: an InvalidArgumentError raised by the function', async () => {
    const seen = new ListStateDescriptor<number | null>('seen');
    const env = StreamExecutionEnvironment.create();
    env
      .fromElements(1)
      .keyBy((x) => x)
      .map(
        new (class extends RichMapFunction<number, number> {
          map(v: number): number {
            this.getRuntimeContext().getListState(seen).add(null);
            return v;
          }
        })(),
      )
      .collect();
    const [, fn, mistake] = await failureOf(env);
    expect(fn).toBeInstanceOf(UserFunctionError);
    expect(fn).toMatchObject({ record: '1', context: { operatorName: 'map' } });
    expect(mistake).toBeInstanceOf(InvalidArgumentError);
    expect((mistake as Error).message).toMatch(/list state 'seen' cannot hold null/);
  });

  test('a line that is not JSON: an InvalidRecordError naming file and offset', async () => {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, '{"a":1}\nnot json\n');
    const env = StreamExecutionEnvironment.create();
    env.fromSource(FileSource.jsonLines(file)).collect();
    const errors = await failureOf(env);
    const bad = errors.find((e) => e instanceof InvalidRecordError) as InvalidRecordError;
    expect(bad).toBeInstanceOf(TidemarkError);
    expect(bad.message).toMatch(/events\.jsonl at byte 8: not a JSON line/);
  });
});
