import fc from 'fast-check';
import {
  type Collector,
  InvalidGraphError,
  type KeyedBroadcastContext,
  KeyedBroadcastProcessFunction,
  KeyedCoProcessFunction,
  type KeyedProcessContext,
  type KeyedReadOnlyBroadcastContext,
  MapStateDescriptor,
  type OnTimerContext,
  OutputTag,
  type RuntimeContext,
  StreamExecutionEnvironment,
  type ValueState,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';
import { fromTestStream, ManualClock, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface Order {
  id: number;
  customer: string;
  amount: number;
}
interface Customer {
  customer: string;
  name: string;
}

describe('connect', () => {
  test('co-map over two non-keyed streams', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const nums = env.fromArray([1, 2, 3], { parallel: true });
    const strs = env.fromArray(['a', 'b']);
    const out = nums
      .connect(strs)
      .map({ map1: (n: number) => `n${n}`, map2: (s: string) => `s${s}` })
      .collect();
    await env.execute();
    expect(out.values.sort()).toEqual(['n1', 'n2', 'n3', 'sa', 'sb']);
  });

  test('keyed co-process: enrich orders with the latest customer record; buffered until it arrives', async () => {
    class Enrich extends KeyedCoProcessFunction<string, Order, Customer, string> {
      private customer!: ValueState<Customer>;
      private pending!: ValueState<Order[]>;
      override open(ctx: RuntimeContext) {
        this.customer = ctx.getState(new ValueStateDescriptor<Customer>('customer'));
        this.pending = ctx.getState(new ValueStateDescriptor<Order[]>('pending'));
      }
      processElement1(o: Order, ctx: KeyedProcessContext<string>, out: Collector<string>) {
        const c = this.customer.value();
        if (c === undefined) this.pending.update([...(this.pending.value() ?? []), o]);
        else out.collect(`${o.id}:${c.name}:${o.amount}:${ctx.getCurrentKey()}`);
      }
      processElement2(c: Customer, _ctx: KeyedProcessContext<string>, out: Collector<string>) {
        this.customer.update(c);
        for (const o of this.pending.value() ?? [])
          out.collect(`${o.id}:${c.name}:${o.amount}:${c.customer}`);
        this.pending.clear();
      }
    }
    const orders: Order[] = Array.from({ length: 60 }, (_x, i) => ({
      id: i,
      customer: `c${i % 6}`,
      amount: i * 3,
    }));
    const customers: Customer[] = Array.from({ length: 6 }, (_x, i) => ({
      customer: `c${i}`,
      name: `Name${i}`,
    }));
    const expected = orders.map((o) => `${o.id}:Name${o.customer.slice(1)}:${o.amount}:${o.customer}`).sort();
    for (const p of [1, 3]) {
      const env = new StreamExecutionEnvironment({ parallelism: p });
      const out = env
        .fromArray(orders, { parallel: true })
        .connect(env.fromArray(customers))
        .keyBy(
          (o) => o.customer,
          (c) => c.customer,
        )
        .process(new Enrich())
        .collect();
      await env.execute();
      expect(out.values.sort()).toEqual(expected);
    }
  });

  test('keyed co-process timers fire with the key in scope', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const a = fromTestStream(env, TestStream.create<string>().addElement('x', 10).addElement('y', 20));
    const b = fromTestStream(env, TestStream.create<string>().addElement('x', 15));
    const out = a
      .keyBy((v) => v)
      .connect(b.keyBy((v) => v))
      .process({
        processElement1(_v: string, ctx: KeyedProcessContext<string>) {
          ctx.timerService().registerEventTimeTimer(ctx.timestamp()! + 100);
        },
        processElement2(_v: string, ctx: KeyedProcessContext<string>) {
          ctx.timerService().registerEventTimeTimer(ctx.timestamp()! + 100);
        },
        onTimer(ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
          out.collect(`${ctx.getCurrentKey()}@${ts}`);
        },
      })
      .collect();
    await env.execute();
    expect(out.values.sort()).toEqual(['x@110', 'x@115', 'y@120']);
  });

  test('connecting a keyed with a non-keyed stream, or a keyed function on non-keyed streams, is rejected', () => {
    const env = new StreamExecutionEnvironment();
    const a = env.fromElements(1);
    const b = env.fromElements(2);
    expect(() => a.keyBy((x) => x).connect(b)).toThrow(/key both .* or neither/);
    class K extends KeyedCoProcessFunction<number, number, number, number> {
      processElement1() {}
      processElement2() {}
    }
    a.connect(b).process(new K()).print();
    expect(() => env.getJobGraph()).toThrow(InvalidGraphError);
    expect(() => env.getJobGraph()).toThrow(/is a keyed operation .* on a non-keyed stream/);
  });
});

describe('broadcast state', () => {
  interface Rule {
    name: string;
    threshold: number;
  }
  const rules = new MapStateDescriptor<string, Rule>('rules');

  class Alerting extends KeyedBroadcastProcessFunction<string, Order, Rule, string> {
    private total!: ValueState<number>;
    override open(ctx: RuntimeContext) {
      this.total = ctx.getState(new ValueStateDescriptor<number>('total', { defaultValue: 0 }));
    }
    processElement(o: Order, ctx: KeyedReadOnlyBroadcastContext<string>, out: Collector<string>) {
      const total = this.total.value()! + o.amount;
      this.total.update(total);
      for (const [name, r] of ctx.getBroadcastState(rules).entries())
        if (total > r.threshold) out.collect(`${ctx.getCurrentKey()} ${name} ${total}`);
      expect(() =>
        (ctx.getBroadcastState(rules) as unknown as { put(k: string, v: Rule): void }).put('x', r0),
      ).toThrow(/read-only/);
    }
    processBroadcastElement(r: Rule, ctx: KeyedBroadcastContext<string>, out: Collector<string>) {
      ctx.getBroadcastState(rules).put(r.name, r);
      let keys = 0;
      ctx.applyToKeyedState(new ValueStateDescriptor<number>('total', { defaultValue: 0 }), (_k, s) => {
        keys++;
        s.update(0); // a new rule resets the running totals
      });
      out.collect(`rule ${r.name} reset ${keys}`);
    }
  }
  const r0: Rule = { name: 'big', threshold: 100 };

  test('rules reach every subtask; the keyed side reads them; the broadcast side visits keyed state', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 3 });
    // Six orders (two per customer); once they are processed the rule comes (processing-time steps
    // wait until the job is idle); once the rule is processed, six more orders.
    const ordersScript = TestStream.create<Order>();
    for (let i = 0; i < 6; i++) ordersScript.addElement({ id: i, customer: `c${i % 3}`, amount: 60 }, i);
    ordersScript.advanceProcessingTime(1).advanceProcessingTime(1);
    for (let i = 6; i < 12; i++) ordersScript.addElement({ id: i, customer: `c${i % 3}`, amount: 60 }, i);
    const rulesScript = TestStream.create<Rule>().advanceProcessingTime(1).addElement(r0, 0);
    const orders = fromTestStream(env, ordersScript);
    const ruleStream = fromTestStream(env, rulesScript).broadcast(rules);
    const out = orders
      .keyBy((o) => o.customer)
      .connect(ruleStream)
      .process(new Alerting())
      .collect();
    await env.execute({ clock: new ManualClock() });
    const resets = out.values.filter((v) => v.startsWith('rule'));
    expect(resets.length).toBe(3); // once per subtask
    expect(resets.map((r) => Number(r.split(' ')[3])).reduce((a, b) => a + b, 0)).toBe(3); // every key's total reset
    expect(out.values.filter((v) => !v.startsWith('rule')).sort()).toEqual([
      'c0 big 120',
      'c1 big 120',
      'c2 big 120',
    ]);
  });

  test('reading an undeclared broadcast state fails clearly', async () => {
    const env = new StreamExecutionEnvironment();
    const other = new MapStateDescriptor<string, number>('other');
    env
      .fromElements(1)
      .connect(env.fromElements('r').broadcast(rules))
      .process({
        processElement(_v: number, ctx) {
          ctx.getBroadcastState(other).get('x');
        },
        processBroadcastElement() {},
      })
      .print();
    await expect(env.execute()).rejects.toThrow(/broadcast state 'other' was not declared/);
  });
});

describe('interval join', () => {
  interface E {
    k: string;
    t: number;
    v: string;
  }
  const events = (side: string) =>
    fc
      .array(fc.record({ k: fc.constantFrom('a', 'b', 'c'), t: fc.integer({ min: 0, max: 200 }) }), {
        maxLength: 40,
      })
      .map((xs) => xs.sort((x, y) => x.t - y.t).map((x, i) => ({ ...x, v: `${side}${i}` })));

  test('joins exactly the pairs within the bounds (compared with a nested loop), at any parallelism', async () => {
    await fc.assert(
      fc.asyncProperty(
        events('L'),
        events('R'),
        fc.integer({ min: -30, max: 30 }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        fc.boolean(),
        async (left, right, lower, width, p, lowerExcl, upperExcl) => {
          const upper = lower + width;
          const env = new StreamExecutionEnvironment({ parallelism: p });
          const wm = () => WatermarkStrategy.forMonotonousTimestamps<E>().withTimestampAssigner((e) => e.t);
          const l = env.fromArray(left, { watermarks: wm() }).keyBy((e) => e.k);
          const r = env.fromArray(right, { watermarks: wm() }).keyBy((e) => e.k);
          let join = l.intervalJoin(r).between(lower, upper);
          if (lowerExcl) join = join.lowerBoundExclusive();
          if (upperExcl) join = join.upperBoundExclusive();
          const out = join
            .process<[string, string, number]>({
              processElement(a, b, ctx, o) {
                o.collect([a.v, b.v, ctx.getTimestamp()]);
              },
            })
            .collect();
          await env.execute();
          const expected: [string, string, number][] = [];
          for (const a of left)
            for (const b of right) {
              const lo = lowerExcl ? b.t > a.t + lower : b.t >= a.t + lower;
              const hi = upperExcl ? b.t < a.t + upper : b.t <= a.t + upper;
              if (a.k === b.k && lo && hi) expected.push([a.v, b.v, Math.max(a.t, b.t)]);
            }
          const key = (x: [string, string, number]) => x.join('|');
          expect(out.values.map(key).sort()).toEqual(expected.map(key).sort());
        },
      ),
      { numRuns: 60 },
    );
  });

  test('elements later than the watermark are dropped and counted, or side-output', async () => {
    const env = new StreamExecutionEnvironment();
    const lateLeft = new OutputTag<E>('late-left');
    // Both inputs reach watermark 100; the processing-time step waits until the join has seen it.
    const script = () => TestStream.create<E>().advanceWatermarkTo(100).advanceProcessingTime(1);
    const left = fromTestStream(
      env,
      script().addElement({ k: 'a', t: 50, v: 'late' }, 50).addElement({ k: 'a', t: 150, v: 'ok' }, 150),
    );
    const right = fromTestStream(
      env,
      script().addElement({ k: 'a', t: 90, v: 'lateR' }, 90).addElement({ k: 'a', t: 155, v: 'r' }, 155),
    );
    const joined = left
      .keyBy((e) => e.k)
      .intervalJoin(right.keyBy((e) => e.k))
      .between(-10, 10)
      .sideOutputLeftLateData(lateLeft)
      .process<string>({
        processElement(a, b, _ctx, o) {
          o.collect(`${a.v}-${b.v}`);
        },
      });
    const out = joined.collect();
    const late = joined.getSideOutput(lateLeft).collect();
    const result = await env.execute({ clock: new ManualClock() });
    expect(out.values).toEqual(['ok-r']);
    expect(late.values.map((e) => e.v)).toEqual(['late']);
    const op = result.metrics.operators.find((o) => o.operatorName === 'intervalJoin')!;
    expect(op.metrics.numLateRecordsDropped).toBe(1);
  });

  test('bounds are validated', () => {
    const env = new StreamExecutionEnvironment();
    const k = env.fromElements(1).keyBy((x) => x);
    expect(() => k.intervalJoin(k).between(10, 5)).toThrow(/lower bound 10 is greater than upper bound 5/);
  });
});
