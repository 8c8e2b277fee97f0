/** Sinks: user sink functions, print, collect (for tests), summary, JSON-lines files. */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Key } from '../../state/hash.js';
import { NO_TIMESTAMP } from '../contract.js';
import type { SinkContext, SinkFunction } from '../functions.js';
import { closeFunction, OneInputStreamOperator, openFunction, snapshotFunction } from '../operator.js';

import { createRuntimeContext } from '../runtime-context.js';
import { formatRecord, toJson } from './format.js';

/** Base of sinks: keeps the record's timestamp for the sink context. */
abstract class BaseSink<T> extends OneInputStreamOperator<T, never> implements SinkContext {
  protected ts = NO_TIMESTAMP;
  timestamp(): number | null {
    return this.ts === NO_TIMESTAMP ? null : this.ts;
  }
  currentWatermark(): number {
    return this.ctx.currentWatermark();
  }
  currentProcessingTime(): number {
    return this.ctx.clock.now();
  }
}

/** Runs a user {@link SinkFunction}; a returned Promise holds the next record back. */
export class SinkOperator<T> extends BaseSink<T> {
  private call!: (value: T, ctx: SinkContext) => void | Promise<void>;
  constructor(private readonly fn: SinkFunction<T>) {
    super();
  }
  override open(): void {
    const fn = this.fn;
    openFunction(fn, createRuntimeContext(this.ctx), (e) => this.userError(e, undefined, 'open()'));
    this.call = typeof fn === 'function' ? fn : (v, c) => fn.invoke(v, c);
  }
  processElement(value: T, timestamp: number): void {
    this.ts = timestamp;
    let r: void | Promise<void>;
    try {
      r = this.call(value, this);
    } catch (e) {
      throw this.userError(e, value, 'sink');
    }
    if (r !== undefined && typeof (r as Promise<void>).then === 'function')
      this.ctx.blockOn(
        (r as Promise<void>).catch((e: unknown) => {
          throw this.userError(e, value, 'sink');
        }),
      );
  }
  override async finish(): Promise<void> {
    const fn = this.fn;
    if (typeof fn === 'object' && fn.finish !== undefined) {
      try {
        await fn.finish();
      } catch (e) {
        throw this.userError(e, undefined, 'sink finish()');
      }
    }
  }
  override close(): void {
    closeFunction(this.fn);
  }
  override snapshotState(checkpointId: number): void {
    snapshotFunction(this.fn, checkpointId, (e) => this.userError(e, undefined, 'snapshotState()'));
  }
}

/**
 * Prints every record as a line: strings as they are, other values as JSON. With parallelism > 1
 * each line starts with the subtask number, as in Flink (`2> ...`), after an optional prefix.
 */
export class PrintSink<T> extends BaseSink<T> {
  private prefix = '';
  constructor(private readonly label: string | undefined) {
    super();
  }
  override open(): void {
    const { parallelism, subtaskIndex } = this.ctx.info;
    const label = this.label === undefined ? '' : `${this.label}:`;
    this.prefix =
      parallelism > 1 ? `${label}${subtaskIndex + 1}> ` : this.label === undefined ? '' : `${this.label}> `;
  }
  processElement(value: T): void {
    this.ctx.stdout.writeLine(this.prefix + formatRecord(value));
  }
}

/** Hands every record to the job's client (`JobResult.collected`), for tests. */
export class CollectSink<T> extends BaseSink<T> {
  constructor(private readonly resultId: string) {
    super();
  }
  processElement(value: T): void {
    this.ctx.results.add(this.resultId, this.ctx.info.subtaskIndex, value);
  }
}

/**
 * Keeps the last value per key and, when the (bounded) input ends, prints them as one JSON object
 * and reports them to the client. Runs at parallelism 1.
 */
export class SummarySink<T> extends BaseSink<T> {
  private readonly latest = new Map<string, unknown>();
  constructor(
    private readonly keyFn: (value: T) => Key,
    private readonly valueFn: (value: T) => unknown,
    private readonly resultId: string,
  ) {
    super();
  }
  processElement(value: T): void {
    let k: Key;
    let v: unknown;
    try {
      k = this.keyFn(value);
      v = this.valueFn(value);
    } catch (e) {
      throw this.userError(e, value);
    }
    this.latest.set(typeof k === 'string' ? k : toJson(k), v);
  }
  override finish(): void {
    // NOTE: keys sorted, so that the line is the same whatever order the keys arrived in.
    const obj = Object.fromEntries([...this.latest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    this.ctx.results.add(this.resultId, this.ctx.info.subtaskIndex, obj);
    const out = this.ctx.stdout;
    if (out.writeFinalLine !== undefined) out.writeFinalLine(toJson(obj));
    else out.writeLine(toJson(obj));
  }
}

/**
 * Writes every record as one JSON line. At parallelism 1 `path` is the file; at higher parallelism
 * it is a directory with one `part-<subtask>.jsonl` per subtask. A full write buffer holds the
 * input back until the file system drains it (backpressure).
 */
export class JsonLinesSink<T> extends BaseSink<T> {
  private stream: WriteStream | undefined;
  private failed: Error | undefined;
  constructor(private readonly path: string) {
    super();
  }
  override open(): void {
    const { parallelism, subtaskIndex } = this.ctx.info;
    const file = parallelism === 1 ? this.path : join(this.path, `part-${subtaskIndex}.jsonl`);
    mkdirSync(dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { flags: 'w' });
    this.stream.on('error', (e) => {
      this.failed = e;
    });
  }
  processElement(value: T): void {
    if (this.failed !== undefined) throw this.userError(this.failed, value, 'file sink');
    const ok = this.stream!.write(`${toJson(value)}\n`);
    if (!ok) this.ctx.blockOn(new Promise<void>((resolve) => this.stream!.once('drain', resolve)));
  }
  override finish(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = this.stream!;
      this.stream = undefined;
      s.end((e?: Error | null) => (e ? reject(this.userError(e, undefined, 'file sink')) : resolve()));
    });
  }
  override close(): void {
    this.stream?.destroy();
  }
}
