/**
 * Deterministic simulation: runs a whole job in this process under a seed that decides every
 * scheduling choice — which subtask runs next and for how long, which input channel it reads — and
 * the timing of processing time (hence of periodic watermarks and processing-time timers), on a
 * manual clock. The same seed always gives the same execution (the trace proves it); a failure
 * names the seed and the call that replays it.
 *
 * NOTE: determinism holds for jobs whose sources and functions are deterministic (collections,
 * generators, TestStreams; no wall clock, no Math.random, no I/O that completes asynchronously).
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
    if (this.random.chance(this.options.clockTickProbability ?? 0.05)) {
      const ms = 1 + this.random.int(this.options.maxClockTickMs ?? 50);
      this.clock.advance(ms);
      if (this.options.trace === true) this.trace.push(`clock +${ms} -> ${this.clock.now()}`);
    }
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
  }
  return { seed: options.seed, steps: policy.steps, trace: policy.trace, result, replay };
}
