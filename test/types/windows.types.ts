// Compile-time checks of the windowed-stream API's types. `npm test` type-checks this file: an
// `@ts-expect-error` line that stops being an error fails the type check.

import {
  type AggregateFunction,
  type AllWindowedStream,
  CountEvictor,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  type GlobalWindow,
  GlobalWindows,
  OutputTag,
  type ProcessWindowContext,
  ProcessWindowFunction,
  PurgingTrigger,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  type WindowedStream,
} from 'tidemark';
import { expectTypeOf } from 'vitest';

const env = new StreamExecutionEnvironment();
interface Bid {
  auction: number;
  price: number;
  bidder: string;
}
const bids = env.fromElements<Bid>({ auction: 1, price: 10, bidder: 'x' });
const keyed = bids.keyBy((b) => b.auction);

// The window type follows the assigner.
expectTypeOf(keyed.window(TumblingEventTimeWindows.of(1000))).toEqualTypeOf<
  WindowedStream<Bid, number, TimeWindow>
>();
expectTypeOf(keyed.window(GlobalWindows.create())).toEqualTypeOf<WindowedStream<Bid, number, GlobalWindow>>();
expectTypeOf(bids.windowAll(SlidingEventTimeWindows.of(10, 5))).toEqualTypeOf<
  AllWindowedStream<Bid, TimeWindow>
>();

// reduce keeps the type; aggregate gives the function's result.
const maxPrice: AggregateFunction<Bid, number, number> = {
  createAccumulator: () => 0,
  add: (b, m) => Math.max(m, b.price),
  getResult: (m) => m,
  merge: (a, b) => Math.max(a, b),
};
const tumbling = keyed.window(TumblingEventTimeWindows.of(1000));
expectTypeOf(tumbling.reduce((a, b) => (a.price >= b.price ? a : b))).toEqualTypeOf<DataStream<Bid>>();
expectTypeOf(tumbling.aggregate(maxPrice)).toEqualTypeOf<DataStream<number>>();

// A process window function sees the key, the window and the elements, typed.
const perWindow = tumbling.process<string>({
  process(key, ctx, elements, out) {
    expectTypeOf(key).toEqualTypeOf<number>();
    expectTypeOf(ctx.window).toEqualTypeOf<TimeWindow>();
    expectTypeOf(elements).toEqualTypeOf<Iterable<Bid>>();
    out.collect(`${key}@${ctx.window.end}`);
    // @ts-expect-error the output type is string
    out.collect(42);
  },
});
expectTypeOf(perWindow).toEqualTypeOf<DataStream<string>>();

// Incremental + process: the process function gets the aggregate's result type.
tumbling.aggregate<number, number, string>(maxPrice, {
  process(key, _ctx, elements, out) {
    for (const m of elements) {
      expectTypeOf(m).toEqualTypeOf<number>();
      out.collect(`${key}: ${m}`);
    }
  },
});

// Class-style process window functions.
class Top extends ProcessWindowFunction<Bid, Bid, number, TimeWindow> {
  process(
    _key: number,
    _ctx: ProcessWindowContext<TimeWindow>,
    elements: Iterable<Bid>,
    out: { collect(b: Bid): void },
  ) {
    for (const b of elements) out.collect(b);
  }
}
expectTypeOf(tumbling.process(new Top())).toEqualTypeOf<DataStream<Bid>>();

// Field aggregations only take numeric fields.
expectTypeOf(tumbling.sum('price')).toEqualTypeOf<DataStream<Bid>>();
// @ts-expect-error 'bidder' is not a numeric field
tumbling.maxBy('bidder');

// The late-data tag must have the stream's type.
tumbling.sideOutputLateData(new OutputTag<Bid>('late'));
// @ts-expect-error a tag of strings does not take bids
tumbling.sideOutputLateData(new OutputTag<string>('late'));

// Triggers and evictors of any element type fit; window types must match.
keyed
  .window(GlobalWindows.create())
  .trigger(PurgingTrigger.of(CountTrigger.of(100)))
  .evictor(CountEvictor.of(10));
keyed.window(EventTimeSessionWindows.withDynamicGap<Bid>((b) => b.price));
// @ts-expect-error the gap extractor takes bids
keyed.window(EventTimeSessionWindows.withDynamicGap<string>((s) => s.length));
