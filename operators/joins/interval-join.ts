/**
 * Interval join of two keyed streams (Flink's IntervalJoinOperator): a left element at time `a`
 * joins every right element of the same key with time in `[a + lower, a + upper]`. Both sides are
 * buffered in keyed map state by timestamp and cleaned up by event-time timers once no future
 * element can join them. Elements later than the watermark are dropped (or side-output), as in
 * Flink. A result carries the larger of the two timestamps.
 */
import { type MapState, MapStateDescriptor } from '../../state/descriptors.js';
import { InvalidRecordError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import type { ProcessJoinContext, ProcessJoinFunctionLike } from '../co-functions.js';
import { TwoInputUdfOperator } from '../co-operators.js';
import { type InternalTimerService, NO_TIMESTAMP, type Timer } from '../contract.js';
import type { KeySelector } from '../functions.js';
import type { OutputTag } from '../output-tag.js';

interface Buffered<T> {
  value: T;
}

const LEFT = 'left';
const RIGHT = 'right';

/** The interval join operator. */
export class IntervalJoinOperator<K extends Key, IN1, IN2, OUT> extends TwoInputUdfOperator<
  IN1,
  IN2,
  OUT,
  ProcessJoinFunctionLike<IN1, IN2, OUT>
> {
  private leftBuffer!: MapState<number, Buffered<IN1>[]>;
  private rightBuffer!: MapState<number, Buffered<IN2>[]>;
  private timers!: InternalTimerService<string>;
  private leftTs = 0;
  private rightTs = 0;
  private readonly lower: number;
  private readonly upper: number;
  private late!: { count: number; inc(n?: number): void };

  constructor(
    fn: ProcessJoinFunctionLike<IN1, IN2, OUT>,
    keySelector1: KeySelector<IN1, K>,
    keySelector2: KeySelector<IN2, K>,
    lowerMs: number,
    upperMs: number,
    lowerInclusive: boolean,
    upperInclusive: boolean,
    private readonly leftLateTag: OutputTag<IN1> | undefined,
    private readonly rightLateTag: OutputTag<IN2> | undefined,
  ) {
    super(fn, keySelector1 as KeySelector<unknown, Key>, keySelector2 as KeySelector<unknown, Key>);
    // NOTE: as Flink, exclusive bounds become inclusive ones one millisecond inside.
    this.lower = lowerInclusive ? lowerMs : lowerMs + 1;
    this.upper = upperInclusive ? upperMs : upperMs - 1;
  }

  override open(): void {
    super.open();
    const backend = this.ctx.keyedState!;
    this.leftBuffer = backend.getState(new MapStateDescriptor<number, Buffered<IN1>[]>('interval-join-left'));
    this.rightBuffer = backend.getState(
      new MapStateDescriptor<number, Buffered<IN2>[]>('interval-join-right'),
    );
    this.timers = this.ctx.getTimerService<string>('interval-join-cleanup', this, (ns) => ns);
    this.late = this.ctx.metrics.counter('numLateRecordsDropped');
  }

  private readonly context: ProcessJoinContext = {
    getLeftTimestamp: () => this.leftTs,
    getRightTimestamp: () => this.rightTs,
    getTimestamp: () => this.ts,
    output: <X>(tag: OutputTag<X>, value: X) => this.side(tag, value),
  };

  processElement1(value: IN1, timestamp: number): void {
    this.setKey(this.keySelector1, value);
    if (this.checkLate(value, timestamp, this.leftLateTag)) return;
    this.add(this.leftBuffer, value, timestamp);
    // Right elements in [ts + lower, ts + upper].
    for (const [rts, list] of this.rightBuffer.entries()) {
      if (rts < timestamp + this.lower || rts > timestamp + this.upper) continue;
      for (const r of list) this.join(value, timestamp, r.value, rts);
    }
    const cleanup = this.upper > 0 ? timestamp + this.upper : timestamp;
    this.timers.registerEventTimeTimer(LEFT, cleanup);
  }

  processElement2(value: IN2, timestamp: number): void {
    this.setKey(this.keySelector2, value);
    if (this.checkLate(value, timestamp, this.rightLateTag)) return;
    this.add(this.rightBuffer, value, timestamp);
    // Left elements with ts + lower <= rts <= ts + upper, i.e. in [rts - upper, rts - lower].
    for (const [lts, list] of this.leftBuffer.entries()) {
      if (lts < timestamp - this.upper || lts > timestamp - this.lower) continue;
      for (const l of list) this.join(l.value, lts, value, timestamp);
    }
    const cleanup = this.lower <= 0 ? timestamp - this.lower : timestamp;
    this.timers.registerEventTimeTimer(RIGHT, cleanup);
  }

  private checkLate<T>(value: T, timestamp: number, tag: OutputTag<T> | undefined): boolean {
    if (timestamp === NO_TIMESTAMP)
      throw this.userError(
        new InvalidRecordError(
          'the interval join needs event timestamps; assign them with a watermark strategy',
        ),
        value,
        'interval join',
      );
    if (timestamp >= this.ctx.currentWatermark()) return false;
    if (tag !== undefined) this.output.collectSide(tag, value, timestamp);
    else this.late.inc();
    return true;
  }

  private add<T>(buffer: MapState<number, Buffered<T>[]>, value: T, timestamp: number): void {
    const list = buffer.get(timestamp);
    if (list === undefined) buffer.put(timestamp, [{ value }]);
    else {
      list.push({ value });
      buffer.put(timestamp, list);
    }
  }

  private join(left: IN1, leftTs: number, right: IN2, rightTs: number): void {
    this.leftTs = leftTs;
    this.rightTs = rightTs;
    this.ts = Math.max(leftTs, rightTs);
    try {
      this.fn.processElement(left, right, this.context, this);
    } catch (e) {
      throw this.userError(e, { left, right });
    }
  }

  onEventTime(timer: Timer<Key, string>): void {
    if (timer.namespace === LEFT) {
      const ts = this.upper <= 0 ? timer.timestamp : timer.timestamp - this.upper;
      this.leftBuffer.remove(ts);
    } else {
      const ts = this.lower <= 0 ? timer.timestamp + this.lower : timer.timestamp;
      this.rightBuffer.remove(ts);
    }
  }

  onProcessingTime(): void {}
}
