/**
 * TestStream: a scripted source for tests. A script is a list of steps — elements with
 * timestamps, watermark advances, processing-time advances, idleness marks — replayed exactly, in
 * order, into a job. Several scripts make a parallel source (one split per script).
 *
 * NOTE: a processing-time step waits until nothing else in the job can run (everything emitted
 * before it has been processed), then moves the job's manual clock, so processing-time timers and
 * windows fire as if time had passed between the steps. Processing time is absolute per script
 * (start + the sum of its advances), so parallel scripts agree on it.
 */
import type { DataStream } from '../../operators/data-stream.js';
import type { StreamEnvironment } from '../../operators/environment.js';
import {
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
  type SourceSplit,
} from '../../operators/sources/source.js';
import type { WatermarkStrategy } from '../../operators/watermarks.js';
import { InvalidArgumentError } from '../../state/errors.js';
import { ManualClock } from '../clock.js';
import type { LateStream, TimedEvent } from './properties.js';

/** One step of a script. */
export type TestStreamStep<T> =
  | { kind: 'element'; value: T; timestamp: number | undefined }
  | { kind: 'watermark'; watermark: number }
  | { kind: 'processingTime'; advanceMs: number }
  | { kind: 'idle' }
  | { kind: 'active' }
  | { kind: 'inspect'; inspect: () => void };

/** A script of a TestStream; build it with the chainable methods. */
export class TestStream<T> {
  readonly steps: TestStreamStep<T>[] = [];
  private open = false;

  /** A new, empty script. */
  static create<T>(): TestStream<T> {
    return new TestStream<T>();
  }

  /**
   * A script that replays recorded events in their recorded order, each with its event time,
   * and after each one the watermark a bounded-out-of-orderness strategy would emit
   * (`largest time so far - maxOutOfOrdernessMs - 1`), so replays are exact and deterministic.
   */
  static replay<T>(
    events: Iterable<T>,
    timestampOf: (event: T) => number,
    options: { maxOutOfOrdernessMs?: number } = {},
  ): TestStream<T> {
    const lag = options.maxOutOfOrdernessMs ?? 0;
    const s = new TestStream<T>();
    let max = Number.NEGATIVE_INFINITY;
    for (const e of events) {
      const t = timestampOf(e);
      s.addElement(e, t);
      if (t > max) {
        max = t;
        s.advanceWatermarkTo(max - lag - 1);
      }
    }
    return s;
  }

  /**
   * The steps of a {@link LateStream} (from `lateStreams`) as a script: each event with its
   * timestamp, each watermark where it came.
   */
  static fromLateStream<K, V>(stream: Pick<LateStream<K, V>, 'steps'>): TestStream<TimedEvent<K, V>> {
    const s = new TestStream<TimedEvent<K, V>>();
    for (const step of stream.steps) {
      if ('event' in step) s.addElement(step.event, step.event.timestamp);
      else s.advanceWatermarkTo(step.watermark);
    }
    return s;
  }

  /** An element with an event timestamp (or none). */
  addElement(value: T, timestamp?: number): this {
    this.steps.push({ kind: 'element', value, timestamp });
    return this;
  }

  /** Several elements: `[value, timestamp]` pairs. */
  addElements(...elements: [T, number][]): this {
    for (const [v, t] of elements) this.addElement(v, t);
    return this;
  }

  /** Emits watermark `t` (it must advance; a watermark that does not is dropped downstream). */
  advanceWatermarkTo(t: number): this {
    this.steps.push({ kind: 'watermark', watermark: t });
    return this;
  }

  /** Emits the final watermark (+Infinity) without ending the stream. */
  advanceWatermarkToInfinity(): this {
    return this.advanceWatermarkTo(Number.POSITIVE_INFINITY);
  }

  /** Moves processing time forward by `ms` once everything before has been processed. */
  advanceProcessingTime(ms: number): this {
    if (!(ms >= 0)) throw new InvalidArgumentError(`advanceProcessingTime needs ms >= 0, got ${ms}`);
    this.steps.push({ kind: 'processingTime', advanceMs: ms });
    return this;
  }

  /**
   * Calls `inspect` once everything before has been processed (nothing in the job can run), before
   * the next step: look at the output so far, or at the job's state (the testing toolkit's
   * `checkStateCleanup` does). The stream reads on when it returns.
   */
  inspect(inspect: () => void): this {
    this.steps.push({ kind: 'inspect', inspect });
    return this;
  }

  /** Marks this stream idle (it leaves the watermark minimum downstream). */
  markIdle(): this {
    this.steps.push({ kind: 'idle' });
    return this;
  }

  /** Marks this stream active again. */
  markActive(): this {
    this.steps.push({ kind: 'active' });
    return this;
  }

  /**
   * Keeps the stream open after its last step (unbounded: the job runs until cancelled). By
   * default the script ends, which emits the final watermark, as every bounded source does.
   */
  keepOpen(): this {
    this.open = true;
    return this;
  }

  /** True if the script keeps the stream open at its end. */
  get isOpen(): boolean {
    return this.open;
  }

  /** This script as a (non-parallel) source. */
  toSource(): Source<T, TestStreamSplit> {
    return new TestStreamSource([this]);
  }

  /** A parallel source with one split per script (split `i` runs on subtask `i % parallelism`). */
  static parallel<T>(scripts: readonly TestStream<T>[]): Source<T, TestStreamSplit> {
    return new TestStreamSource(scripts);
  }
}

/** The position of one script. */
export interface TestStreamSplit extends SourceSplit {
  /** Index of the script. */
  script: number;
  /** Next step to run. */
  step: number;
}

class TestStreamSource<T> implements Source<T, TestStreamSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  readonly maxParallelism: number | undefined;
  constructor(private readonly scripts: readonly TestStream<T>[]) {
    this.boundedness = scripts.some((s) => s.isOpen) ? 'unbounded' : 'bounded';
    this.maxParallelism = scripts.length === 1 ? 1 : undefined;
  }
  createSplits(): TestStreamSplit[] {
    return this.scripts.map((_s, i) => ({ splitId: `script-${i}`, script: i, step: 0 }));
  }
  createReader(ctx: SourceReaderContext): SourceReader<T, TestStreamSplit> {
    return new TestStreamReader(this.scripts, ctx);
  }
}

class TestStreamReader<T> implements SourceReader<T, TestStreamSplit> {
  private readonly splits: TestStreamSplit[] = [];
  private next = 0;
  private waitingForIdle = false;
  private readonly start: number;
  /** Sum of processing-time advances per script. */
  private readonly advanced = new Map<number, number>();

  constructor(
    private readonly scripts: readonly TestStream<T>[],
    private readonly ctx: SourceReaderContext,
  ) {
    this.start = ctx.clock.now();
  }

  addSplits(splits: readonly TestStreamSplit[]): void {
    for (const s of splits) this.splits.push({ ...s });
  }

  pollNext(output: ReaderOutput<T>): InputStatus {
    // Round-robin over this reader's scripts, one step at a time.
    for (let tries = 0; tries < this.splits.length; tries++) {
      const split = this.splits[this.next % this.splits.length]!;
      this.next++;
      const script = this.scripts[split.script]!;
      const step = script.steps[split.step];
      if (step === undefined) continue;
      const out = output.forSplit(split.splitId);
      switch (step.kind) {
        case 'element':
          out.collect(step.value, step.timestamp);
          break;
        case 'watermark':
          out.emitWatermark(step.watermark);
          break;
        case 'idle':
          out.markIdle();
          break;
        case 'active':
          out.markActive();
          break;
        case 'inspect':
          if (!this.waitingForIdle) {
            this.waitingForIdle = true;
            this.next--;
            this.ctx.wakeWhenIdle();
            return NOTHING_AVAILABLE;
          }
          this.waitingForIdle = false;
          step.inspect();
          split.step++;
          this.ctx.wakeUp();
          return NOTHING_AVAILABLE;
        case 'processingTime': {
          if (!this.waitingForIdle) {
            this.waitingForIdle = true;
            this.next--;
            this.ctx.wakeWhenIdle();
            return NOTHING_AVAILABLE;
          }
          this.waitingForIdle = false;
          const clock = this.ctx.clock;
          if (!(clock instanceof ManualClock))
            throw new InvalidArgumentError(
              'a TestStream that advances processing time needs a ManualClock: execute the job with { clock: new ManualClock() }',
            );
          const total = (this.advanced.get(split.script) ?? 0) + step.advanceMs;
          this.advanced.set(split.script, total);
          if (this.start + total > clock.now()) clock.set(this.start + total);
          split.step++;
          // Yield, so that the timers now due fire before the next step's records.
          this.ctx.wakeUp();
          return NOTHING_AVAILABLE;
        }
      }
      split.step++;
      return MORE_AVAILABLE;
    }
    // Every script is at its end.
    if (this.splits.some((s) => this.scripts[s.script]!.isOpen)) return NOTHING_AVAILABLE;
    for (const s of this.splits) output.releaseSplit(s.splitId);
    return END_OF_INPUT;
  }

  snapshotState(): TestStreamSplit[] {
    return this.splits.map((s) => ({ ...s }));
  }
}

/** A stream of a TestStream (or of several, in parallel) in a job. */
export function fromTestStream<T>(
  env: StreamEnvironment,
  stream: TestStream<T> | readonly TestStream<T>[],
  watermarks?: WatermarkStrategy<T>,
): DataStream<T> {
  if (stream instanceof TestStream)
    return env.fromSource<T, TestStreamSplit>(stream.toSource(), watermarks, 'TestStream');
  const scripts = stream as readonly TestStream<T>[];
  return env
    .fromSource<T, TestStreamSplit>(TestStream.parallel(scripts), watermarks, 'TestStream')
    .setParallelism(Math.max(1, Math.min(scripts.length, env.getParallelism())));
}
