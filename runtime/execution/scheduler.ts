/**
 * The scheduler loop of one thread's tasks. It never blocks: it does bounded work per task, yields
 * to the event loop between time slices (so I/O, async sources and timers make progress) and sleeps
 * when nothing can run, until a wake-up, a settled promise or a processing-time deadline.
 *
 * NOTE: the scheduling is pluggable ({@link SchedulingPolicy}): the testing toolkit replaces the
 * round-robin loop with a seeded choice of task, budget and input channel, and a manual clock.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Clock, LineWriter } from '../../operators/contract.js';
import { TidemarkError } from '../../state/errors.js';
import type { CheckpointCoordinator } from '../checkpoint/coordinator.js';
import { isManualClock } from '../clock.js';
import type { Channel } from '../task/channel.js';
import type { Task } from '../task/task.js';
import type { JobLifecycle } from './lifecycle.js';
import { BufferedStdout } from './results.js';

/** Milliseconds of work between yields while checkpoint writes are in flight (see `run`). */
const IO_SLICE_MS = 1;

/** Chooses which task runs next, with what budget, and which channel it reads. */
export interface SchedulingPolicy {
  /** Index into `runnable` of the task to step next. */
  chooseTask(runnable: readonly Task[]): number;
  /** Maximum events the chosen task may process in this step. */
  budget(task: Task): number;
  /** Index among `candidates` readable input channels of `task`. */
  chooseChannel?(task: Task, candidates: number): number;
  /**
   * Called when no task can run. Return true after making progress possible (e.g. advancing a
   * manual clock); false to wait for outside events.
   */
  onIdle?(state: { nextWakeTime: number; clock: Clock }): boolean;
  /** Called before each step (a simulation may move a manual clock here). */
  beforeStep?(clock: Clock): void;
  /**
   * Pause processing while checkpoint data is being written (checkpoints then complete at
   * deterministic points, whatever the storage's speed); default false.
   */
  readonly awaitCheckpointIo?: boolean;
  /**
   * Take checkpoint snapshots whole in their synchronous part, not copy-on-write (default false):
   * a simulation steps without event-loop turns and moves its clock when idle, so work left for
   * later turns would not run before the checkpoint expired.
   */
  readonly snapshotsInSyncPart?: boolean;
  /**
   * Takes checkpoints by progress rather than by processing time (the testing toolkit's failure
   * checks): called before each step with every task and the checkpoints: whether one is in
   * flight, and `trigger()`, which triggers one now and returns its id (undefined if declined: one
   * is in flight, or a task has finished).
   */
  checkpoint?(tasks: readonly Task[], checkpoints: ProgressCheckpoints): void;
  /**
   * True if the policy holds `task` back now, runnable as it is (a source that read its share
   * until the next checkpoint): it is not stepped, and does not count as progress, so that the
   * scheduler waits for I/O rather than spin on it.
   */
  holds?(task: Task, now: number): boolean;
  /** Called when the run starts, with every task (the testing toolkit inspects their state). */
  started?(tasks: readonly Task[]): void;
  /**
   * Called once every task has finished (after the final watermark and the end of input), before
   * the final checkpoint and before the operators are closed: the testing toolkit reads their state.
   */
  allFinished?(tasks: readonly Task[]): void;
}

/** What a {@link SchedulingPolicy} that takes checkpoints by progress sees of them. */
export interface ProgressCheckpoints {
  /** A checkpoint is in flight. */
  readonly busy: boolean;
  /** The id of the last completed checkpoint (0 if none). */
  readonly lastCompleted: number;
  /** The id of the last triggered checkpoint (0 if none), by whoever triggered it. */
  readonly lastTriggered: number;
  /** Triggers a checkpoint now; its id, or undefined if declined. */
  trigger(): number | undefined;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  readonly clock: Clock;
  readonly stdout: LineWriter;
  /** Default: round-robin over the runnable tasks. */
  readonly policy: SchedulingPolicy | undefined;
  /** Events a task may process per step. */
  readonly budget: number;
  /** Milliseconds of work between yields to the event loop. */
  readonly sliceMs: number;
  /** The job's checkpoint coordinator, when it runs in this thread. */
  readonly coordinator: CheckpointCoordinator | undefined;
  /** Snapshot writes of this thread (a slot writes its own), when there is no coordinator here. */
  readonly snapshotWrites?: { readonly writesInFlight: number };
  /**
   * After each pass over the tasks (a slot takes its messages, and sends its frames and credits);
   * `progressed` is false when the pass did nothing: the loop is about to sleep.
   */
  readonly afterPass?: (progressed: boolean) => void;
  /**
   * Fail the run when nothing can run and nothing is awaited (a stalled job). Off for a slot of a
   * distributed run, which waits for frames from other slots.
   */
  readonly detectStalls: boolean;
  /**
   * Time each task's steps (`Task.busyMs`) and the passes it could not run for a full output
   * (`Task.backPressuredMs`): two clock reads per step and one per pass (off: none).
   */
  readonly observe?: boolean | undefined;
}

/** Runs one thread's tasks (see the module comment). */
export class Scheduler {
  private wakeResolve: (() => void) | undefined;
  /**
   * A wake-up came while the loop was not waiting (during a pass, e.g. frames or credits a slot
   * took from its ports between passes): the loop looks again instead of going to sleep, or the
   * wake-up would be lost (and two slots waiting for each other's credits would wait forever).
   */
  private wokenEarly = false;
  /** Promises tasks wait for. */
  private pending = 0;
  private readonly idleWaiters = new Set<Task>();
  /** When the current pass started (`performance.now()`; observed runs only). */
  passStartedAt = performance.now();
  /** Tasks reading a channel's backlog inside another task's step now (see {@link drain}). */
  private readonly draining = new Set<Task>();
  /** Time spent in drains (observed runs), taken off the busy time of the step they ran in. */
  private drainedMs = 0;
  /** Each task's output channels to tasks of this thread (see {@link drain}). */
  private readonly localOutputs = new Map<Task, Channel[]>();
  /** A drained task failed: the run fails with it after the step the drain ran in. */
  private drainFailure: { error: unknown; task: Task } | undefined;

  constructor(
    private readonly tasks: readonly Task[],
    private readonly lifecycle: JobLifecycle,
    private readonly options: SchedulerOptions,
  ) {
    lifecycle.onStop(() => this.wakeUp());
  }

  /** Something changed: the loop looks at the tasks again. */
  wakeUp(): void {
    const r = this.wakeResolve;
    if (r !== undefined) {
      this.wakeResolve = undefined;
      r();
    } else this.wokenEarly = true;
  }

  /** Runs `task` again once nothing else can run. */
  wakeWhenIdle(task: Task): void {
    this.idleWaiters.add(task);
  }

  /** `task` waits for `promise`: the loop wakes when it settles; a rejection fails the run. */
  blockOn(task: Task, promise: Promise<unknown>): void {
    this.pending++;
    promise.then(
      () => {
        this.pending--;
        this.wakeUp();
      },
      (e: unknown) => {
        this.pending--;
        this.lifecycle.fail(e, task.describe());
      },
    );
  }

  /** Runs until every task finished, or the run stops (failed or cancelled). */
  async run(): Promise<void> {
    const { tasks, lifecycle } = this;
    const { policy, coordinator, clock, budget, sliceMs, afterPass, stdout } = this.options;
    const checkpoints: ProgressCheckpoints = {
      get busy() {
        return coordinator?.busy === true;
      },
      get lastCompleted() {
        return coordinator?.lastCompleted?.checkpointId ?? 0;
      },
      get lastTriggered() {
        return coordinator?.lastTriggeredId ?? 0;
      },
      trigger: () =>
        coordinator === undefined || coordinator.busy ? undefined : coordinator.trigger(clock.now()),
    };
    policy?.started?.(tasks);
    const observe = this.options.observe === true;
    if (policy === undefined) this.installDrains();
    for (;;) {
      // NOTE: while checkpoint chunks are being written, slices are short, so that their replies
      // are taken (and the next writes sent) without waiting behind a full slice of records.
      const writes = coordinator?.writesInFlight ?? this.options.snapshotWrites?.writesInFlight ?? 0;
      const sliceEnd = performance.now() + (writes > 0 ? IO_SLICE_MS : sliceMs);
      let progressed = false;
      do {
        progressed = false;
        this.wokenEarly = false;
        coordinator?.tick(clock.now());
        const now = clock.now();
        if (policy === undefined && observe) {
          // NOTE: the time since the last pass (and its sleep, if any) counts as backpressure for
          // a task that cannot run now because an output is full.
          const passStart = performance.now();
          const sinceLast = passStart - this.passStartedAt;
          this.passStartedAt = passStart;
          for (let i = 0; i < tasks.length; i++) {
            const t = tasks[i]!;
            if (!t.canRun(now)) {
              if (t.outputGate.full > 0) t.backPressuredMs += sinceLast;
              continue;
            }
            progressed = true;
            const s = performance.now();
            const drained = this.drainedMs;
            try {
              t.step(budget, now);
            } catch (e) {
              lifecycle.fail(e, t.describe());
              return;
            }
            t.busyMs += performance.now() - s - (this.drainedMs - drained);
            if (this.failedInDrain()) return;
          }
        } else if (policy === undefined) {
          for (let i = 0; i < tasks.length; i++) {
            const t = tasks[i]!;
            if (!t.canRun(now)) continue;
            progressed = true;
            try {
              t.step(budget, now);
            } catch (e) {
              lifecycle.fail(e, t.describe());
              return;
            }
            if (this.failedInDrain()) return;
          }
        } else {
          policy.beforeStep?.(clock);
          if (coordinator !== undefined) policy.checkpoint?.(tasks, checkpoints);
          const at = clock.now();
          const runnable = tasks.filter((t) => t.canRun(at) && policy.holds?.(t, at) !== true);
          if (runnable.length > 0) {
            progressed = true;
            const t = runnable[runnable.length === 1 ? 0 : policy.chooseTask(runnable)]!;
            try {
              t.step(policy.budget(t), at);
            } catch (e) {
              lifecycle.fail(e, t.describe());
              return;
            }
            // NOTE: with a policy the loop does not yield by time; while a checkpoint is being
            // written it yields after every step, so that storage I/O completes between steps.
            if (coordinator?.busy === true) {
              if (policy.awaitCheckpointIo === true) await coordinator.ioSettled();
              else await yieldToEventLoop();
            }
          }
        }
        afterPass?.(progressed);
        if (lifecycle.stopped) return;
      } while (progressed && performance.now() < sliceEnd);
      if (stdout instanceof BufferedStdout) stdout.flush();
      if (lifecycle.stopped) return;
      if (tasks.every((t) => t.status === 'finished')) {
        policy?.allFinished?.(tasks);
        return;
      }
      if (!progressed && this.idleWaiters.size > 0) {
        // Nothing else can run: wake the tasks that asked to run then (TestStream steps).
        for (const t of this.idleWaiters) t.pollSourceAgain();
        this.idleWaiters.clear();
        continue;
      }
      if (progressed) await yieldToEventLoop();
      else await this.waitForWork();
      if (lifecycle.stopped) return;
    }
  }

  /**
   * Has every channel between two of this thread's tasks call {@link drain} once it holds more than
   * twice its capacity. NOTE: the round-robin loop only; a scheduling policy (a simulation) keeps
   * the choice of which task runs when, at step boundaries.
   */
  private installDrains(): void {
    const byGate = new Map(this.tasks.map((t) => [t.outputGate, t] as const));
    for (const t of this.tasks)
      for (const c of t.inputs) {
        const producer = byGate.get(c.producer);
        if (producer === undefined) continue;
        c.drainAt = 2 * c.capacity;
        c.drain = (ch) => this.drain(t, ch);
        let outs = this.localOutputs.get(producer);
        if (outs === undefined) this.localOutputs.set(producer, (outs = []));
        outs.push(c);
      }
  }

  /**
   * The consumer `task` reads `channel` down below its capacity now, from inside the step of the
   * task that filled it past twice its capacity (see `Channel.drain` for why); if its own outputs
   * are full, their consumers read first, the same way. It is another interleaving of the tasks'
   * work, one step boundaries could give: a consumer sees only what its channels hold, and the
   * producer's step goes on after it. A consumer that cannot read now (blocked, being drained
   * already up the stack, an output to another thread full) is asked again once the channel has
   * grown by another twice its capacity; a failure is the consumer's, reported after the step
   * (not thrown into the producer's code).
   */
  private drain(task: Task, channel: Channel): void {
    if (this.drainFailure === undefined && !this.draining.has(task)) {
      this.draining.add(task);
      const observe = this.options.observe === true;
      const s = observe ? performance.now() : 0;
      const before = this.drainedMs;
      try {
        while (channel.size >= channel.capacity) {
          if (task.outputGate.full > 0) this.makeRoom(task);
          if (this.drainFailure !== undefined || !task.canRun(Number.NEGATIVE_INFINITY)) break;
          const size = channel.size;
          task.step(size, Number.NEGATIVE_INFINITY);
          if (channel.size >= size) break;
        }
      } catch (e) {
        this.drainFailure = { error: e, task };
      } finally {
        this.draining.delete(task);
        if (observe) {
          // Drains within this one (the consumer's own consumers) are their tasks' busy time.
          const ms = performance.now() - s;
          task.busyMs += ms - (this.drainedMs - before);
          this.drainedMs = before + ms;
        }
      }
    }
    // Read down: past twice the capacity again; not (the consumer could not go on): once it grew
    // by that much more, not at every record.
    channel.drainAt = (channel.size < channel.capacity ? 0 : channel.size) + 2 * channel.capacity;
  }

  /** Fails the run if a task drained during the last step failed (see {@link drain}); true then. */
  private failedInDrain(): boolean {
    const f = this.drainFailure;
    if (f === undefined) return false;
    this.lifecycle.fail(f.error, f.task.describe());
    return true;
  }

  /** The consumers of `task`'s full channels in this thread read them (see {@link drain}). */
  private makeRoom(task: Task): void {
    const outs = this.localOutputs.get(task);
    if (outs === undefined) return;
    for (const c of outs) if (c.size >= c.capacity) c.drain!(c);
  }

  /** Sleeps until something can run: a wake-up, a settled promise, or a processing-time deadline. */
  private waitForWork(): Promise<void> {
    if (this.wokenEarly) {
      this.wokenEarly = false;
      return yieldToEventLoop();
    }
    const { coordinator, clock, policy } = this.options;
    let next = coordinator?.nextWakeTime() ?? Number.POSITIVE_INFINITY;
    for (const t of this.tasks) if (t.status === 'running' && t.wakeTime < next) next = t.wakeTime;

    const manual = isManualClock(clock);
    const waitingSources = this.tasks.some((t) => t.isSource && t.status === 'running' && !t.sourceAvailable);
    // NOTE: a simulation moves time only when nothing waits for I/O (a sink's commit, a
    // checkpoint write, a source's read); otherwise it waits for the I/O like a real run.
    const awaitingIo =
      this.pending > 0 ||
      (coordinator?.writesInFlight ?? 0) > 0 ||
      this.tasks.some(
        (t) =>
          t.isSource &&
          t.status === 'running' &&
          !t.sourceAvailable &&
          t.wakeTime === Number.POSITIVE_INFINITY,
      );
    if (!awaitingIo && policy?.onIdle?.({ nextWakeTime: next, clock })) return Promise.resolve();

    if (
      this.options.detectStalls &&
      this.pending === 0 &&
      !waitingSources &&
      next === Number.POSITIVE_INFINITY
    ) {
      const stuck = this.tasks
        .filter((t) => t.status !== 'finished')
        .map((t) => `${t.describe()} [${t.status}, ${t.inputGate.queued} queued]`);
      this.lifecycle.fail(
        new TidemarkError(
          'INTERNAL_ERROR',
          `job '${this.lifecycle.jobName}' stalled: nothing can run, but these tasks did not finish: ${stuck.join('; ')}`,
        ),
      );
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.wakeResolve = () => {
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      if (next < Number.POSITIVE_INFINITY && !manual) {
        timer = setTimeout(() => this.wakeUp(), Math.max(0, next - clock.now()));
      }
    });
  }
}
