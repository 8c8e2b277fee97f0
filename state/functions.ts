/**
 * Function shapes that state primitives need. They are part of the public API (re-exported by
 * `tidemark`), declared here because `state/` may not import `operators/`.
 */

/** Combines two values of the same type into one (associative). */
export type ReduceFunction<T> = (a: T, b: T) => T;

/**
 * An incremental aggregation: `createAccumulator`, `add` each input, `getResult` at the end, and
 * `merge` two accumulators (needed by session windows and by rescaling).
 */
export interface AggregateFunction<IN, ACC, OUT> {
  createAccumulator(): ACC;
  add(value: IN, accumulator: ACC): ACC;
  getResult(accumulator: ACC): OUT;
  merge?(a: ACC, b: ACC): ACC;
}
