import { MAX_WATERMARK } from './contract.js';
import { OneInputStreamOperator } from './operator.js';
import type {
  TimestampAssigner,
  WatermarkGenerator,
  WatermarkOutput,
  WatermarkStrategy,
} from './watermarks.js';

/**
 * `assignTimestampsAndWatermarks` in the middle of a stream: assigns timestamps and generates
 * watermarks from the records it sees. As in Flink, upstream watermarks are dropped (only the final
 * `+Infinity` is forwarded), so the stream's event time is this operator's alone.
 */
export class TimestampsAndWatermarksOperator<T>
  extends OneInputStreamOperator<T, T>
  implements WatermarkOutput
{
  private generator!: WatermarkGenerator<T>;
  private readonly assigner: TimestampAssigner<T> | undefined;
  private current = Number.NEGATIVE_INFINITY;
  private idle = false;
  private cancelPeriodic: (() => void) | undefined;

  constructor(
    private readonly strategy: WatermarkStrategy<T>,
    private readonly intervalMs: number,
  ) {
    super();
    this.assigner = strategy.timestampAssigner;
  }

  override open(): void {
    this.generator = this.strategy.createGenerator({ clock: this.ctx.clock });
    if (this.intervalMs > 0) {
      const tick = (time: number) => {
        this.generator.onPeriodicEmit(this);
        this.cancelPeriodic = this.ctx.registerProcessingTimer(time + this.intervalMs, tick);
      };
      this.cancelPeriodic = this.ctx.registerProcessingTimer(this.ctx.clock.now() + this.intervalMs, tick);
    }
  }

  processElement(value: T, timestamp: number): void {
    let ts = timestamp;
    if (this.assigner !== undefined) {
      try {
        ts = this.assigner(value, timestamp);
      } catch (e) {
        throw this.userError(e, value, 'timestamp assigner');
      }
    }
    if (this.idle) this.markActive();
    this.generator.onEvent(value, ts, this);
    this.output.collect(value, ts);
  }

  override processWatermark(watermark: number): void {
    if (watermark === MAX_WATERMARK) this.emitWatermark(MAX_WATERMARK);
  }

  emitWatermark(watermark: number): void {
    if (watermark <= this.current) return;
    this.current = watermark;
    if (this.idle) this.markActive();
    this.ctx.advanceWatermark(watermark);
    this.output.emitWatermark(watermark);
  }

  markIdle(): void {
    if (this.idle) return;
    this.idle = true;
    this.output.emitIdle(true);
  }

  markActive(): void {
    if (!this.idle) return;
    this.idle = false;
    this.output.emitIdle(false);
  }

  override close(): void {
    this.cancelPeriodic?.();
  }
}
