import {
  type Collector,
  InvalidGraphError,
  type KeyedProcessContext,
  KeyedProcessFunction,
  StreamExecutionEnvironment,
  ValueStateDescriptor,
} from 'tidemark';
import { describe, expect, test } from 'vitest';
import type { OperatorTransformation } from '../../operators/transformation.js';

function env(parallelism = 2) {
  return new StreamExecutionEnvironment({ parallelism, jobName: 'graph-test' });
}

function chains(e: StreamExecutionEnvironment) {
  return e.getJobGraph().vertices.map((v) => v.nodes.map((n) => n.name));
}

describe('graph validation', () => {
  test('a keyed operation on a non-keyed stream is rejected, naming the operator', () => {
    class Counter extends KeyedProcessFunction<string, string, number> {
      processElement(_v: string, _c: KeyedProcessContext<string>, out: Collector<number>) {
        out.collect(1);
      }
    }
    const e = env();
    e.fromElements('a').process(new Counter()).name('counting').print();
    expect(() => e.getJobGraph()).toThrow(InvalidGraphError);
    expect(() => e.getJobGraph()).toThrow(
      /job 'graph-test': operator 'counting' \(\d+-process\) is a keyed operation .* call keyBy\(\) before it/,
    );
  });

  test('keyed state in a function on a non-keyed stream fails at run time with a clear error', async () => {
    const e = env(1);
    e.fromElements('a')
      .map({
        open(ctx) {
          ctx.getState(new ValueStateDescriptor<number>('n'));
        },
        map: (v: string) => v,
      })
      .name('stateful map')
      .print();
    await expect(e.execute()).rejects.toThrow(
      /operator 'stateful map'.*value state 'n' is keyed state.*after keyBy\(\)/,
    );
  });

  test('duplicate uids are rejected', () => {
    const e = env();
    const s = e.fromElements(1, 2);
    s.map((x) => x)
      .uid('same')
      .print();
    s.map((x) => x + 1)
      .uid('same')
      .print();
    expect(() => e.getJobGraph()).toThrow(/duplicate uid 'same' on operators 'map' and 'map'/);
  });

  test('a cycle is rejected', () => {
    const e = env();
    const a = e
      .fromElements(1)
      .map((x) => x)
      .name('a');
    const b = a.map((x) => x).name('b');
    b.print();
    // The fluent API cannot build a cycle; edit the description as a tool could.
    (a.transformation as OperatorTransformation & { inputs: unknown[] }).inputs = [b.transformation];
    expect(() => e.getJobGraph()).toThrow(
      /the graph has a cycle: 'a' -> 'b' -> 'a'|the graph has a cycle: 'b' -> 'a' -> 'b'/,
    );
  });

  test('parallelism greater than maxParallelism is rejected', () => {
    const e = env();
    e.fromElements(1)
      .keyBy((x) => x)
      .reduce((a, b) => a + b)
      .setParallelism(8)
      .setMaxParallelism(4)
      .name('sum')
      .print();
    expect(() => e.getJobGraph()).toThrow(
      /operator 'sum' \(\d+-reduce\) has parallelism 8, which is greater than its maxParallelism 4/,
    );
    const e2 = new StreamExecutionEnvironment({ parallelism: 4, maxParallelism: 2 });
    e2.fromElements(1)
      .map((x) => x)
      .print();
    expect(() => e2.getJobGraph()).toThrow(/parallelism 4, which is greater than its maxParallelism 2/);
  });

  test('forward partitioning between different parallelisms is rejected', () => {
    const e = env();
    e.fromElements(1)
      .forward()
      .map((x) => x)
      .setParallelism(3)
      .print();
    expect(() => e.getJobGraph()).toThrow(
      /forward partitioning from 'fromElements' .*\(parallelism 1\) to 'map' .*\(parallelism 3\) needs equal parallelism/,
    );
  });

  test('a non-parallel source cannot run in parallel', () => {
    const e = env();
    e.fromElements(1).setParallelism(2).print();
    expect(() => e.getJobGraph()).toThrow(
      /'fromElements' .* is a non-parallel source: its parallelism must be 1, got 2/,
    );
  });

  test('a job without sinks is rejected', () => {
    const e = env();
    e.fromElements(1).map((x) => x);
    expect(() => e.getJobGraph()).toThrow(/has no sinks/);
  });

  test('operator settings on virtual nodes are rejected', () => {
    const e = env();
    expect(() =>
      e
        .fromElements(1)
        .keyBy((x) => x)
        .setParallelism(2),
    ).toThrow(/setParallelism\(\) applies to operators/);
  });
});

describe('chaining', () => {
  test('forward edges with equal parallelism chain; keyBy, rebalance and parallelism changes do not', () => {
    const e = env(2);
    e.fromGenerator((i) => i, { count: 10 })
      .map((x) => x)
      .filter((x) => x > 0)
      .keyBy((x) => x % 3)
      .reduce((a, b) => a + b)
      .map((x) => x)
      .rebalance()
      .map((x) => x)
      .setParallelism(3)
      .print()
      .setParallelism(3);
    expect(chains(e)).toEqual([
      ['generator', 'map', 'filter'],
      ['reduce', 'map'],
      ['map', 'print'],
    ]);
  });

  test('disableChaining and startNewChain split chains', () => {
    const e = env(1);
    e.fromElements(1)
      .map((x) => x)
      .name('a')
      .map((x) => x)
      .name('b')
      .disableChaining()
      .map((x) => x)
      .name('c')
      .map((x) => x)
      .name('d')
      .startNewChain()
      .print();
    expect(chains(e)).toEqual([['fromElements', 'a'], ['b'], ['c'], ['d', 'print']]);
  });

  test('an operator with several inputs (union) starts a chain; a fan-out chains every branch', () => {
    const e = env(1);
    const a = e.fromElements(1);
    const b = e.fromElements(2);
    a.union(b)
      .map((x) => x)
      .name('after-union')
      .print();
    const c = e.fromElements(3).name('fan');
    c.map((x) => x)
      .name('left')
      .print();
    c.map((x) => x)
      .name('right')
      .print();
    expect(chains(e)).toEqual(
      expect.arrayContaining([
        ['after-union', 'print'],
        ['fan', 'left', 'print', 'right', 'print'],
      ]),
    );
  });

  test('operator ids are stable and uids are used when given', () => {
    const build = () => {
      const e = env(1);
      e.fromElements(1)
        .map((x) => x)
        .uid('my-map')
        .filter(() => true)
        .print();
      return e.getJobGraph().nodes.map((n) => n.operatorId);
    };
    expect(build()).toEqual(build());
    expect(build()).toContain('my-map');
  });
});

describe('plan formats', () => {
  test('text, dot and json show vertices, parallelism, partitioning and chains', () => {
    const e = env(4);
    e.fromElements('a b')
      .flatMap((l) => l.split(' '))
      .keyBy((w) => w)
      .reduce((a, b) => a + b)
      .print();
    const text = e.getExecutionPlan('text');
    expect(text).toContain("job 'graph-test': 3 vertices");
    expect(text).toMatch(
      /vertex 3: reduce -> print\n {2}parallelism 4 \(subtasks 0\.\.3\), maxParallelism 128/,
    );
    expect(text).toContain('by hash (keyBy)');
    const json = JSON.parse(e.getExecutionPlan('json'));
    expect(json.vertices.map((v: { parallelism: number }) => v.parallelism)).toEqual([1, 4, 4]);
    expect(json.vertices[2].inputs[0].partitioning).toBe('hash (keyBy)');
    expect(json.vertices[2].operators.map((o: { keyed: boolean }) => o.keyed)).toEqual([true, false]);
    const dot = e.getExecutionPlan('dot');
    expect(dot).toMatch(/^digraph "graph-test" \{/);
    expect(dot).toContain('style=dashed');
    expect(dot).toContain('label="hash (keyBy)"');
  });
});
