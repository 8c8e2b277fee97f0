// Compile-time checks of the public API's types. `npm test` type-checks this file: an
// `@ts-expect-error` line that stops being an error fails the type check.

import {
  type AggregateFunction,
  type DataStream,
  type KeyedStream,
  OutputTag,
  StreamExecutionEnvironment,
  ValueStateDescriptor,
} from 'tidemark';
import { expectTypeOf } from 'vitest';

const env = new StreamExecutionEnvironment();
interface Click {
  user: string;
  page: string;
  ms: number;
}
const clicks = env.fromElements<Click>({ user: 'a', page: '/', ms: 1 });

// Generic types flow end to end.
const words = env.fromElements('a b').flatMap((line) => line.split(' '));
expectTypeOf(words).toEqualTypeOf<DataStream<string>>();
const pairs = words.map((word) => ({ word, count: 1 }));
const keyed = pairs.keyBy((r) => r.word);
expectTypeOf(keyed).toEqualTypeOf<KeyedStream<{ word: string; count: number }, string>>();
expectTypeOf(keyed.reduce((a, b) => ({ word: a.word, count: a.count + b.count }))).toEqualTypeOf<
  DataStream<{ word: string; count: number }>
>();

// A wrong field name in a key selector is a compile error.
// @ts-expect-error 'usr' is not a field of Click
clicks.keyBy((c) => c.usr);

// A key must be a primitive or an array of primitives.
// @ts-expect-error an object is not a key
clicks.keyBy((c) => ({ u: c.user }));

// A reducer must return the stream's type, with its fields.
// @ts-expect-error 'count' is not a field of Click
clicks.keyBy((c) => c.user).reduce((a, b) => ({ ...a, count: a.ms + b.ms }).count);
clicks
  .keyBy((c) => c.user)
  .reduce((a, b) => ({
    ...a,
    // @ts-expect-error 'millis' is not a field of Click
    ms: a.millis + b.ms,
  }));

// Aggregate functions are typed in, accumulator and out.
const avgMs: AggregateFunction<Click, [number, number], number> = {
  createAccumulator: () => [0, 0],
  add: (c, [s, n]) => [s + c.ms, n + 1],
  getResult: ([s, n]) => s / n,
};
expectTypeOf(clicks.keyBy((c) => c.page).aggregate(avgMs)).toEqualTypeOf<DataStream<number>>();
// @ts-expect-error an aggregate over numbers does not apply to clicks
clicks.keyBy((c) => c.page).aggregate(avgMs as unknown as AggregateFunction<number, number, number>);

// Side outputs carry their tag's type.
const late = new OutputTag<{ reason: string }>('late');
const processed = clicks.process<number>({
  processElement(c, ctx, out) {
    if (c.ms > 10) ctx.output(late, { reason: 'slow' });
    // @ts-expect-error the tag's type is { reason: string }
    ctx.output(late, 42);
    out.collect(c.ms);
  },
});
expectTypeOf(processed.getSideOutput(late)).toEqualTypeOf<DataStream<{ reason: string }>>();

// Keyed state is typed by its descriptor.
const counter = new ValueStateDescriptor<number>('count');
clicks
  .keyBy((c) => c.user)
  .process<string>({
    open(ctx) {
      const s = ctx.getState(counter);
      expectTypeOf(s.value()).toEqualTypeOf<number | undefined>();
      // @ts-expect-error a number state holds numbers
      s.update('x');
    },
    processElement(c, ctx, out) {
      expectTypeOf(ctx.getCurrentKey()).toEqualTypeOf<string>();
      out.collect(c.page);
    },
  });
