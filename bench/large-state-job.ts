/**
 * The job of the large-state demonstration (bench/large-state.ts, issue 16): deduplication over
 * `LARGE_STATE_KEYS` distinct keys. The generator emits `1.25 × keys` events; event `i` carries key
 * `(i × 7919) mod keys`, so the first `keys` events bring every key once (each a new entry in the
 * keyed state) and the rest bring keys seen before. A keyed function keeps a `ValueState` count per
 * key and emits a key the first time it sees it, to an exactly-once FileSink in `LARGE_STATE_OUT`.
 * Exactly-once output: every key once, so `keys` lines summing to `keys × (keys − 1) / 2`.
 *
 * NOTE: no timers: the state is one value per key (in LMDB with `--state-backend lmdb`); timers
 * would stay on the heap with either backend.
 */
import {
  type Collector,
  FileSink,
  job,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';

const KEYS = Number(process.env.LARGE_STATE_KEYS ?? 1_000_000);
const OUT = process.env.LARGE_STATE_OUT ?? 'large-state-out';
/** Records per second of the source (unset: as fast as it goes). */
const RATE = process.env.LARGE_STATE_RATE === undefined ? undefined : Number(process.env.LARGE_STATE_RATE);

/** Emits a key the first time it is seen; counts how often it was. */
class FirstSeen extends KeyedProcessFunction<number, number, number> {
  private seen!: ValueState<number>;
  override open(ctx: RuntimeContext): void {
    this.seen = ctx.getState(new ValueStateDescriptor<number>('seen'));
  }
  processElement(key: number, _ctx: KeyedProcessContext<number>, out: Collector<number>): void {
    const n = this.seen.value();
    this.seen.update((n ?? 0) + 1);
    if (n === undefined) out.collect(key);
  }
}

// NOTE: a heap sample to standard error every second, for the demonstration's report.
if (process.env.LARGE_STATE_MEMORY === '1')
  setInterval(() => {
    const m = process.memoryUsage();
    process.stderr.write(`MEMORY heap=${m.heapUsed} rss=${m.rss}\n`);
  }, 1000).unref();

export default job((env) => {
  env
    .fromGenerator((i) => (i * 7919) % KEYS, {
      count: Math.floor(KEYS * 1.25),
      ...(RATE === undefined ? {} : { ratePerSecond: RATE }),
    })
    .uid('keys')
    .keyBy((k) => k)
    .process(new FirstSeen())
    .uid('first-seen')
    .sinkTo(FileSink.lines<number>(OUT, String))
    .uid('out');
});
