/**
 * The graph-building half of the execution environment: configuration, sources and the list of
 * transformations. The runtime's `StreamExecutionEnvironment` extends it with execution.
 */
import { InvalidArgumentError } from '../state/errors.js';
import { checkParallelism, UPPER_BOUND_MAX_PARALLELISM } from '../state/key-groups.js';
import {
  type StateBackendConfig,
  type StateBackendKind,
  stateBackendConfig,
} from '../state/state-backends.js';
import { type CollectedStream, DataStream } from './data-stream.js';
import { AsyncIterableSource } from './sources/async-iterable.js';
import { CollectionSource } from './sources/collection.js';
import { type GeneratorOptions, GeneratorSource } from './sources/generator.js';
import { type Source, SourceOperator, type SourceSplit } from './sources/source.js';

import type { SourceTransformation, Transformation } from './transformation.js';
import type { WatermarkStrategy } from './watermarks.js';

/** Settings of an environment. */
export interface EnvironmentOptions {
  /** Job name, shown in plans, errors and metrics (default `job`). */
  jobName?: string;
  /** Default parallelism of operators (default 1). */
  parallelism?: number;
  /** Default max parallelism = number of key groups (default 128, or more for high parallelism). */
  maxParallelism?: number;
  /** Capacity, in records, of the queue between two subtasks (default 1024). */
  bufferCapacity?: number;
  /** Processing-time interval of periodic watermark generation in ms (default 200; 0 disables). */
  autoWatermarkIntervalMs?: number;
  /** Keyed-state backend (default: TIDEMARK_STATE_BACKEND if set, else the heap); see {@link StreamEnvironment.setStateBackend}. */
  stateBackend?: StateBackendConfig;
}

/** Resolved configuration of an environment. */
export interface EnvironmentConfig {
  jobName: string;
  parallelism: number;
  maxParallelism: number | undefined;
  bufferCapacity: number;
  autoWatermarkIntervalMs: number;
  stateBackend: StateBackendConfig | undefined;
}

type NewTransformation<T extends Transformation> = Omit<
  T,
  'id' | 'uid' | 'parallelism' | 'maxParallelism' | 'chaining'
> &
  Partial<Pick<T, 'parallelism' | 'maxParallelism' | 'chaining' | 'uid'>>;

/** Builds a job: sources, then transformations on the streams they return. */
export class StreamEnvironment {
  readonly config: EnvironmentConfig;
  /** @internal every transformation, in creation order. */
  readonly transformations: Transformation[] = [];
  /** @internal collecting sinks, filled when the job ends. */
  readonly collectedStreams: CollectedStream<unknown>[] = [];
  private resultCount = 0;

  constructor(options: EnvironmentOptions = {}) {
    this.config = {
      jobName: options.jobName ?? 'job',
      parallelism: options.parallelism ?? 1,
      maxParallelism: options.maxParallelism,
      bufferCapacity: options.bufferCapacity ?? 1024,
      autoWatermarkIntervalMs: options.autoWatermarkIntervalMs ?? 200,
      stateBackend: options.stateBackend === undefined ? undefined : stateBackendConfig(options.stateBackend),
    };
    this.setParallelism(this.config.parallelism);
    if (this.config.maxParallelism !== undefined) this.setMaxParallelism(this.config.maxParallelism);
    if (!Number.isInteger(this.config.bufferCapacity) || this.config.bufferCapacity < 1)
      throw new InvalidArgumentError(
        `bufferCapacity must be a positive integer, got ${this.config.bufferCapacity}`,
      );
  }

  /** Default parallelism of operators that do not set their own. */
  setParallelism(parallelism: number): this {
    if (!Number.isInteger(parallelism) || parallelism < 1)
      throw new InvalidArgumentError(`parallelism must be a positive integer, got ${parallelism}`);
    this.config.parallelism = parallelism;
    return this;
  }

  getParallelism(): number {
    return this.config.parallelism;
  }

  /** Default max parallelism (number of key groups) of keyed operators. */
  setMaxParallelism(maxParallelism: number): this {
    checkParallelism(1, maxParallelism);
    if (maxParallelism > UPPER_BOUND_MAX_PARALLELISM)
      throw new InvalidArgumentError(`maxParallelism must be at most ${UPPER_BOUND_MAX_PARALLELISM}`);
    this.config.maxParallelism = maxParallelism;
    return this;
  }

  getMaxParallelism(): number | undefined {
    return this.config.maxParallelism;
  }

  /**
   * Where keyed state (every state kind, and window contents) lives: `'heap'` (the default, in
   * JavaScript Maps) or `'lmdb'` (an embedded LMDB database on local disk under `dir`, for state
   * larger than memory; default directory: `tidemark-state` in the system's temporary directory).
   * Timers stay on the heap with either. Checkpoints have the same format with both: a job can
   * switch backends across a restore. Flink's `setStateBackend`.
   */
  setStateBackend(
    backend: StateBackendKind | StateBackendConfig,
    options: Omit<StateBackendConfig, 'kind'> = {},
  ): this {
    this.config.stateBackend = stateBackendConfig(backend, options);
    return this;
  }

  /** The state backend set on this environment (undefined: the default). */
  getStateBackend(): StateBackendConfig | undefined {
    return this.config.stateBackend;
  }

  /** Sets the job name. */
  setJobName(name: string): this {
    this.config.jobName = name;
    return this;
  }

  /** @internal adds a transformation with the next id. */
  addTransformation<T extends Transformation>(t: NewTransformation<T>): T {
    const full = {
      uid: undefined,
      parallelism: undefined,
      maxParallelism: undefined,
      chaining: 'always',
      ...t,
      id: this.transformations.length + 1,
    } as unknown as T;
    this.transformations.push(full);
    return full;
  }

  /** @internal a fresh id for a result-reporting sink. */
  newResultId(kind: string): string {
    this.resultCount++;
    return `${kind}-${this.resultCount}`;
  }

  /** Sets the processing-time interval of periodic watermarks (Flink's auto-watermark interval). */
  setAutoWatermarkInterval(intervalMs: number): this {
    if (!(intervalMs >= 0))
      throw new InvalidArgumentError(`the watermark interval must be >= 0, got ${intervalMs}`);
    this.config.autoWatermarkIntervalMs = intervalMs;
    return this;
  }

  /**
   * A stream from any {@link Source}, with timestamps and watermarks generated per split by
   * `watermarks` (none if omitted: only the final watermark of a bounded source).
   */
  fromSource<T, S extends SourceSplit = SourceSplit>(
    source: Source<T, S>,
    watermarks?: WatermarkStrategy<T>,
    name = 'source',
  ): DataStream<T> {
    const config = this.config;
    const t = this.addTransformation<SourceTransformation>({
      type: 'source',
      kind: 'source',
      name,
      source: source as unknown as Source<unknown>,
      factory: () =>
        new SourceOperator(
          source as unknown as Source<unknown>,
          watermarks as WatermarkStrategy<unknown> | undefined,
          config.autoWatermarkIntervalMs,
        ),
      maxParallelism: source.maxParallelism,
      parallelism: source.maxParallelism === 1 ? 1 : undefined,
    });
    return new DataStream<T>(this, t);
  }

  /** A bounded, non-parallel stream of the given values. */
  fromElements<T>(...items: T[]): DataStream<T> {
    return this.fromSource(new CollectionSource(items), undefined, 'fromElements');
  }

  /** A bounded stream of an array's items (non-parallel unless `parallel: true`). */
  fromArray<T>(
    items: readonly T[],
    options: { parallel?: boolean; watermarks?: WatermarkStrategy<T> } = {},
  ): DataStream<T> {
    return this.fromSource(new CollectionSource(items, options), options.watermarks, 'fromArray');
  }

  /**
   * A non-parallel stream of an async (or sync) iterable's items. Pass a function that creates the
   * iterable to make the source restartable.
   */
  fromAsyncIterable<T>(
    iterable: AsyncIterable<T> | Iterable<T> | (() => AsyncIterable<T> | Iterable<T>),
    options: { bounded?: boolean; watermarks?: WatermarkStrategy<T> } = {},
  ): DataStream<T> {
    return this.fromSource(
      new AsyncIterableSource(iterable, options),
      options.watermarks,
      'fromAsyncIterable',
    );
  }

  /**
   * A parallel stream of `generate(0), generate(1), ...`: `count` records at `ratePerSecond`,
   * with timestamps and watermarks by `options.watermarks`.
   */
  fromGenerator<T>(
    generate: (index: number) => T,
    options: GeneratorOptions<T> & { watermarks?: WatermarkStrategy<T> } = {},
  ): DataStream<T> {
    return this.fromSource(new GeneratorSource(generate, options), options.watermarks, 'generator');
  }
}
