/**
 * Deterministic simulation: runs a whole job in this process under a seed that decides every
 * scheduling choice — which subtask runs next and for how long, which input channel it reads — and
 * the timing of processing time (hence of periodic watermarks and processing-time timers), on a
 * manual clock. The same seed always gives the same execution (the trace proves it); a failure
 * names the seed and the call that replays it.
 *
 * The simulation also owns the job's wall clock: while it runs, `Date.now()` and `performance.now()`
 * follow the manual clock (see wall-clock.ts), and the seed may jump the clock by large amounts
 * (`maxClockJumpMs`, `clockJumpSizesMs`), so that processing-time windows and timers fire in the
 * middle of a run, not only at its end.
 *
 * NOTE: determinism holds for jobs whose sources and functions are deterministic (collections,
 * generators, TestStreams; no Math.random, no I/O that completes asynchronously); the wall clock
 * read through `Date.now()` is the simulated one.
 */
import type { Clock, LineWriter } from '../../operators/contract.js';
import { describeErrorChain, registerErrorClass, TidemarkError } from '../../state/errors.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import type { JobResult } from '../execution/results.js';
import type { SchedulingPolicy } from '../execution/scheduler.js';
import { buildJob, type JobDefinition } from '../job.js';
import type { Task } from '../task/task.js';
import { SeededRandom } from './random.js';
import { enterWallClock, simulateWallClock } from './wall-clock.js';

/** Options of a simulation. */
export interface SimulationOptions {
  /** Decides the execution; the same seed gives the same run. */
  seed: number;
  /** Default parallelism of the job (default: the job's). */
  parallelism?: number;
  maxParallelism?: number;
  /** Largest number of events a subtask processes per step (default 8). */
  maxBudget?: number;
  /** Processing time at the start (default 0). */
  clockStartMs?: number;
  /** Chance, before each step, to move processing time forward a little (default 0.05). */
  clockTickProbability?: number;
  /** Largest such move in ms (default 50). */
  maxClockTickMs?: number;
  /**
   * Chance, before each step, to jump processing time by a large amount (default 0, or 0.02 when
   * `maxClockJumpMs` or `clockJumpSizesMs` is set): processing-time windows and timers then fire
   * in the middle of the run.
   */
  clockJumpProbability?: number;
  /** Largest jump in ms, uniform from 1 (default 60 000; when `clockJumpSizesMs` is set, half the jumps). */
  maxClockJumpMs?: number;
  /** Jump by these sizes ±1 (e.g. the job's processing-time window sizes and timer delays). */
  clockJumpSizesMs?: readonly number[];
  /**
   * The job's periodic watermark interval (Flink's auto-watermark interval; default: the
   * environment's, 200 ms; 0: no periodic watermarks, only the final one). A job that sets its
   * own interval keeps it.
   */
  autoWatermarkIntervalMs?: number;
  /**
   * `Date.now()` and `performance.now()` follow the simulated clock while the job runs (default
   * true; `performance.now()` counts from the start of the run). Durations in the result are then
   * simulated time too.
   */
  wallClock?: boolean;
  /** Record a trace of every decision (default false). */
  trace?: boolean;
  /** Channel capacity between subtasks (small values exercise backpressure; default 4). */
  bufferCapacity?: number;
  /** Where print sinks write (default: standard output). */
  stdout?: LineWriter;
  /** Pause while checkpoint data is written, so checkpoints complete deterministically (default true). */
  awaitCheckpointIo?: boolean;
  /**
   * Freeze every record an operator emits, so that a function that changes a record in place
   * throws where it does (strict records; default true).
   */
  strictRecords?: boolean;
}

/** The result of one simulated run. */
export interface SimulationResult {
  readonly seed: number;
  /** Scheduling steps taken. */
  readonly steps: number;
  /** The decisions, if `trace` was set. */
  readonly trace: readonly string[];
  readonly result: JobResult;
  /** How to replay this run. */
  readonly replay: string;
}

/** Raised when a simulated run fails: names the seed and how to replay it. */
export class SimulationFailure extends TidemarkError {
  constructor(
    readonly seed: number,
    readonly replay: string,
    cause: unknown,
  ) {
    super(
      'JOB_FAILED',
      `simulated run failed with seed ${seed}; replay it with ${replay}\n${describeErrorChain(cause)}`,
      {},
      { cause },
    );
    this.name = 'SimulationFailure';
  }
}
registerErrorClass('SimulationFailure', SimulationFailure);

/** A seeded scheduling policy over a manual clock. */
export class SimulationPolicy implements SchedulingPolicy {
  readonly random: SeededRandom;
  readonly trace: string[] = [];
  steps = 0;
  readonly awaitCheckpointIo: boolean;
  readonly snapshotsInSyncPart = true;
  constructor(
    private readonly options: SimulationOptions,
    private readonly clock: ManualClock,
  ) {
    this.random = new SeededRandom(options.seed);
    this.awaitCheckpointIo = options.awaitCheckpointIo ?? true;
  }
  chooseTask(runnable: readonly Task[]): number {
    const i = this.random.int(runnable.length);
    this.steps++;
    if (this.options.trace === true)
      this.trace.push(`step ${this.steps}: ${runnable[i]!.describe()} at ${this.clock.now()}`);
    return i;
  }
  budget(): number {
    return 1 + this.random.int(this.options.maxBudget ?? 8);
  }
  chooseChannel(_task: Task, candidates: number): number {
    return this.random.int(candidates);
  }
  beforeStep(): void {
    enterWallClock(this.clock);
    if (this.random.chance(this.options.clockTickProbability ?? 0.05)) {
      const ms = 1 + this.random.int(this.options.maxClockTickMs ?? 50);
      this.clock.advance(ms);
      if (this.options.trace === true) this.trace.push(`clock +${ms} -> ${this.clock.now()}`);
    }
    // NOTE: no random draw when jumps are off, so the seeds of earlier versions replay the same runs.
    if (this.jumpProbability > 0 && this.random.chance(this.jumpProbability)) {
      const ms = this.jumpSize();
      this.clock.advance(ms);
      if (this.options.trace === true) this.trace.push(`clock jumps +${ms} -> ${this.clock.now()}`);
    }
  }
  private get jumpProbability(): number {
    const o = this.options;
    return (
      o.clockJumpProbability ??
      (o.maxClockJumpMs !== undefined || (o.clockJumpSizesMs?.length ?? 0) > 0 ? 0.02 : 0)
    );
  }
  private jumpSize(): number {
    const sizes = this.options.clockJumpSizesMs ?? [];
    const max = this.options.maxClockJumpMs ?? 60_000;
    if (sizes.length > 0 && (this.options.maxClockJumpMs === undefined || this.random.chance(0.5)))
      return Math.max(0, sizes[this.random.int(sizes.length)]! - 1 + this.random.int(3));
    return 1 + this.random.int(max);
  }
  onIdle(state: { nextWakeTime: number; clock: Clock }): boolean {
    if (state.nextWakeTime === Number.POSITIVE_INFINITY) return false;
    const to = Math.max(state.nextWakeTime, this.clock.now());
    if (this.options.trace === true) this.trace.push(`idle: clock -> ${to}`);
    this.clock.set(to);
    return true;
  }
}

/** The call that replays a run: `head` + the options + `)`, e.g. `simulate(build, { seed: 7 })`. */
function replayCall(head: string, options: SimulationOptions): string {
  const rest = Object.entries(options)
    .filter(
      ([k, v]) =>
        k !== 'seed' && v !== undefined && k !== 'trace' && k !== 'stdout' && k !== 'awaitCheckpointIo',
    )

    .map(([k, v]) => `, ${k}: ${JSON.stringify(v)}`)
    .join('');
  return `${head}{ seed: ${options.seed}${rest} })`;
}

/**
 * Builds a job with `build` on a fresh environment and runs it under the seed. `build` returns
 * whatever it wants to read afterwards (e.g. the collected streams).
 */
export async function simulate<T>(
  build: (env: StreamExecutionEnvironment) => T,
  options: SimulationOptions,
): Promise<SimulationResult & { built: T }> {
  const env = new StreamExecutionEnvironment({
    ...(options.parallelism === undefined ? {} : { parallelism: options.parallelism }),
    ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
    ...(options.autoWatermarkIntervalMs === undefined
      ? {}
      : { autoWatermarkIntervalMs: options.autoWatermarkIntervalMs }),
    bufferCapacity: options.bufferCapacity ?? 4,
  });
  const built = build(env);
  const r = await runSimulated(env, options, replayCall('simulate(build, ', options));
  return { ...r, built };
}

/** Runs a job module's job under the seed (what `tidemark simulate` does). */
export async function simulateJob(
  definition: JobDefinition,
  options: SimulationOptions,
  replay?: string,
): Promise<SimulationResult> {
  const env = await buildJob(definition, {
    ...(options.parallelism === undefined ? {} : { parallelism: options.parallelism }),
    ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
    ...(options.autoWatermarkIntervalMs === undefined
      ? {}
      : { autoWatermarkIntervalMs: options.autoWatermarkIntervalMs }),
    bufferCapacity: options.bufferCapacity ?? 4,
  });
  return runSimulated(env, options, replay ?? replayCall('simulateJob(job, ', options));
}

async function runSimulated(
  env: StreamExecutionEnvironment,
  options: SimulationOptions,
  replay: string,
): Promise<SimulationResult> {
  const clock = new ManualClock(options.clockStartMs ?? 0);
  const policy = new SimulationPolicy(options, clock);
  let result: JobResult;
  const release = options.wallClock === false ? undefined : simulateWallClock(clock);
  try {
    result = await env.execute({
      clock,
      policy,
      timeSliceMs: 1_000_000,
      strictRecords: options.strictRecords ?? true,
      ...(options.stdout === undefined ? {} : { stdout: options.stdout }),
    });
  } catch (e) {
    throw new SimulationFailure(options.seed, replay, e);
  } finally {
    release?.();
  }
  return { seed: options.seed, steps: policy.steps, trace: policy.trace, result, replay };
}
