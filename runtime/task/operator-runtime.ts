/**
 * The runtime side of one operator subtask: its context (state backends, timer services,
 * processing-time callbacks, watermark), its snapshot and its restore. Tasks hold one per chained
 * operator; the test harness of `tidemark/testing` holds one on its own.
 */
import type {
  AlignmentGroup,
  Clock,
  InternalTimerService,
  LineWriter,
  NamespaceKeyFn,
  OperatorContext,
  Output,
  ResultSink,
  TaskInfo,
  Triggerable,
} from '../../operators/contract.js';
import type { AbstractStreamOperator } from '../../operators/operator.js';
import { TidemarkError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import {
  HeapKeyedStateBackend,
  type KeyedStateSnapshot,
  type KeyGroupSnapshot,
  worthWritingWhole,
} from '../../state/heap-backend.js';
import { canonicalKey, type MapKey } from '../../state/key-codec.js';
import { KeyGroupRange } from '../../state/key-groups.js';
import {
  type OperatorStateSnapshot,
  OperatorStateStore,
  redistributeOperatorState,
} from '../../state/operator-state.js';
import { encode } from '../../state/snapshot-format.js';
import type { OperatorMetrics } from '../metrics.js';
import { encodeKeyGroupState } from './key-group-codec.js';
import { type FlatTimers, TimerServiceImpl } from './timers.js';

/** Timers of one key group, by timer service name. */
export type KeyGroupTimers = Record<string, FlatTimers>;

/** Everything of one key group of one operator: state tables and timers. */
export interface KeyGroupState {
  state: KeyGroupSnapshot;
  timers: KeyGroupTimers;
  /**
   * Set on a delta (an incremental snapshot of some keys): the keys (canonical forms) whose state
   * and timers this replaces in the key group's previous snapshot. Absent: the whole key group.
   */
  replaces?: MapKey[];
}

/** Deltas on a key group before it is written whole again (bounds the work of a restore). */
export const MAX_DELTAS_PER_KEY_GROUP = 8;

/**
 * A key group's state after deltas (oldest first): the previous state without the keys any delta
 * replaces, then, per key, the entries and timers of the newest delta that replaced it. One pass
 * over the previous state, however many deltas.
 */
export function applyKeyGroupDeltas(
  previous: KeyGroupState,
  deltas: readonly KeyGroupState[],
): KeyGroupState {
  if (deltas.length === 0) return previous;
  // The newest delta that replaced each key.
  const owner = new Map<MapKey, number>();
  let whole = -1;
  for (let d = deltas.length - 1; d >= 0; d--) {
    const replaces = deltas[d]!.replaces;
    if (replaces === undefined) {
      whole = d;
      break;
    }
    for (const k of replaces) if (!owner.has(k)) owner.set(k, d);
  }
  const sources: [KeyGroupState, (k: MapKey) => boolean][] = [];
  const base = whole >= 0 ? deltas[whole]! : previous;
  sources.push([base, (k) => !owner.has(k)]);
  for (let d = whole + 1; d < deltas.length; d++) sources.push([deltas[d]!, (k) => owner.get(k) === d]);
  const state: KeyGroupSnapshot = {};
  const timers: KeyGroupTimers = {};
  for (const [src, keep] of sources) {
    for (const [name, t] of Object.entries(src.state)) {
      const into = (state[name] ??= { kind: t.kind, namespaced: t.namespaced, data: [] }).data;
      const d = t.data;
      if (!t.namespaced) {
        for (let i = 0; i < d.length; i += 2) if (keep(d[i] as MapKey)) into.push(d[i], d[i + 1]);
      } else
        for (let i = 0; i < d.length; ) {
          const end = i + 2 + 2 * (d[i + 1] as number);
          if (keep(d[i] as MapKey)) for (let j = i; j < end; j++) into.push(d[j]);
          i = end;
        }
    }
    for (const [name, t] of Object.entries(src.timers)) {
      const into = (timers[name] ??= { event: [], processing: [] });
      for (const [from, to] of [
        [t.event, into.event],
        [t.processing, into.processing],
      ] as const)
        for (let i = 0; i < from.length; i += 3)
          if (keep(canonicalKey(from[i] as Key))) to.push(from[i], from[i + 1], from[i + 2]);
    }
  }
  for (const [name, t] of Object.entries(state)) if (t.data.length === 0) delete state[name];
  return { state, timers };
}

/** The snapshot of one operator subtask (the unit a checkpoint stores per operator and subtask). */
export interface OperatorSubtaskState {
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  /** Keyed operators: per key group (only groups that hold something). */
  keyGroups?: Map<number, KeyGroupState>;
  operatorState: OperatorStateSnapshot;
}

/** The synchronous part of one operator subtask's checkpoint (see `snapshotIncremental`). */
export interface SubtaskSnapshot {
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  keyed: boolean;
  watermark: number;
  /** Encoded {@link OperatorStateSnapshot}. */
  operatorState: Uint8Array;
  /** Key groups changed since the previous snapshot: encoded {@link KeyGroupState}. */
  changed: Map<number, Uint8Array>;
  /**
   * The key groups of `changed` that are deltas, each with the checkpoint whose snapshot of the
   * group it applies to (the last one that wrote the group): `[keyGroup, checkpointId]`.
   */
  deltas: [number, number][];
  /** The key groups this subtask owns, `[start, end]` (empty when end < start). */
  keyGroupStart: number;
  keyGroupEnd: number;
}

/** What an operator subtask starts from. */
export interface OperatorRestore {
  keyed?: KeyedStateSnapshot[];
  operatorState?: OperatorStateSnapshot;
  /** By timer service name: `[keyGroup, timers]` of the key groups this subtask owns. */
  timers?: Record<string, [number, FlatTimers][]>;
}

/** The operator a runtime runs: identity, parallelism and how to create it. */
export interface OperatorSpec {
  readonly operatorId: string;
  readonly name: string;
  readonly parallelism: number;
  readonly maxParallelism: number;
  readonly keyed: boolean;
  readonly factory: () => AbstractStreamOperator<unknown>;
}

/** What an operator subtask needs from the task (or harness) that runs it. */
export interface OperatorHost {
  readonly jobName: string;
  readonly clock: Clock;
  readonly results: ResultSink;
  readonly stdout: LineWriter;
  readonly attemptNumber: number;
  readonly runId: string;
  /** The operator's task should run again (a source has data). */
  wakeUp(): void;
  /** The task should run again once nothing else can run. */
  wakeWhenIdle(): void;
  /** The task should run again at processing time `time`. */
  wakeAt(time: number): void;
  /** The task takes no input until the promise settles. */
  blockOn(promise: Promise<unknown>): void;
  alignmentGroup(group: string): AlignmentGroup;
}

/** One operator subtask with its runtime context. */
export class OperatorRuntime {
  readonly op: AbstractStreamOperator<unknown>;
  readonly ctx: OperatorContext<unknown>;
  readonly keyed: HeapKeyedStateBackend | undefined;
  readonly operatorState: OperatorStateStore;
  readonly timerServices = new Map<string, TimerServiceImpl<unknown>>();
  /** Per key group of the range: the checkpoint that last wrote it (-1: none yet). */
  private readonly lastWrite: Float64Array;
  /** Per key group: deltas written since it was last written whole. */
  private readonly deltaCounts: Uint8Array;
  /** The last watermark this operator processed. */
  watermark = Number.NEGATIVE_INFINITY;
  private callbacks: { time: number; callback: (time: number) => void; cancelled: boolean }[] = [];

  constructor(
    readonly spec: OperatorSpec,
    readonly subtaskIndex: number,
    output: Output<unknown>,
    readonly metrics: OperatorMetrics,
    private readonly host: OperatorHost,
    restore: OperatorRestore | undefined,
  ) {
    const info: TaskInfo = {
      jobName: host.jobName,
      operatorId: spec.operatorId,
      operatorName: spec.name,
      subtaskIndex,
      parallelism: spec.parallelism,
      maxParallelism: spec.maxParallelism,
      attemptNumber: host.attemptNumber,
      runId: host.runId,
    };
    const describe = () =>
      `operator '${spec.name}' (${spec.operatorId}) subtask ${subtaskIndex + 1}/${spec.parallelism} of job '${host.jobName}'`;
    this.keyed = spec.keyed
      ? new HeapKeyedStateBackend({
          maxParallelism: spec.maxParallelism,
          keyGroupRange: KeyGroupRange.forSubtask(subtaskIndex, spec.parallelism, spec.maxParallelism),
          now: () => host.clock.now(),
          owner: describe(),
        })
      : undefined;
    const groups = this.keyed?.keyGroupRange.size ?? 0;
    this.lastWrite = new Float64Array(groups).fill(-1);
    this.deltaCounts = new Uint8Array(groups);
    if (this.keyed !== undefined && restore?.keyed !== undefined) this.keyed.restore(restore.keyed);
    this.operatorState = new OperatorStateStore(describe());
    if (restore?.operatorState !== undefined) this.operatorState.restore(restore.operatorState);
    const restoredTimers = restore?.timers;
    const self = this;
    const keyed = this.keyed;
    this.ctx = {
      info,
      output,
      clock: host.clock,
      keyedState: keyed,
      operatorState: this.operatorState,
      restored: restore !== undefined,
      metrics,

      results: host.results,
      stdout: host.stdout,
      currentWatermark: () => self.watermark,
      getTimerService<N>(
        name: string,
        target: Triggerable<Key, N>,
        namespaceKey?: NamespaceKeyFn<N>,
      ): InternalTimerService<N> {
        const existing = self.timerServices.get(name);
        if (existing !== undefined) return existing as unknown as InternalTimerService<N>;
        if (keyed === undefined)
          throw new TidemarkError(
            'STATE_ERROR',
            `${describe()}: timers are only available on keyed streams (call keyBy() first)`,
            {
              jobName: host.jobName,
              operatorId: spec.operatorId,
            },
          );
        const nsKey =
          namespaceKey ?? ((ns: N) => (ns === undefined ? 0 : (ns as unknown as string | number)));
        const svc = new TimerServiceImpl<N>(name, keyed, target, nsKey, {
          now: () => host.clock.now(),
          currentWatermark: () => self.watermark,
          scheduleProcessingTime: (t) => host.wakeAt(t),
        });
        const r = restoredTimers?.[name];
        if (r !== undefined) for (const [g, t] of r) svc.restore(g, t);
        self.timerServices.set(name, svc as unknown as TimerServiceImpl<unknown>);
        return svc;
      },
      advanceWatermark(watermark: number): void {
        self.watermark = watermark;
        for (const svc of self.timerServices.values()) svc.advanceWatermark(watermark);
      },
      wakeUp: () => host.wakeUp(),
      wakeAt: (t) => host.wakeAt(t),
      wakeWhenIdle: () => host.wakeWhenIdle(),
      registerProcessingTimer: (time, callback) => self.registerCallback(time, callback),
      watermarkAlignment: (group) => host.alignmentGroup(group),
      blockUntil: (promise) => host.blockOn(promise),
      describe,
    };
    this.op = spec.factory();
    this.op.setup(this.ctx);
  }

  private registerCallback(time: number, callback: (time: number) => void): () => void {
    const entry = { time, callback, cancelled: false };
    let i = this.callbacks.length;
    while (i > 0 && this.callbacks[i - 1]!.time > time) i--;
    this.callbacks.splice(i, 0, entry);
    this.host.wakeAt(time);
    return () => {
      entry.cancelled = true;
    };
  }

  /** Fires due processing-time callbacks and timers; returns the next time it needs, or +Infinity. */
  fireProcessingTime(now: number): number {
    while (this.callbacks.length > 0 && this.callbacks[0]!.time <= now) {
      const c = this.callbacks.shift()!;
      if (!c.cancelled) c.callback(c.time);
    }
    for (const svc of this.timerServices.values()) svc.advanceProcessingTime(now);
    return this.nextProcessingTime();
  }

  /** The earliest pending processing-time callback or timer. */
  nextProcessingTime(): number {
    let next = this.callbacks.find((c) => !c.cancelled)?.time ?? Number.POSITIVE_INFINITY;
    for (const svc of this.timerServices.values()) next = Math.min(next, svc.nextProcessingTime());
    return next;
  }

  /** Drops pending processing-time callbacks (the operator finished). */
  clearCallbacks(): void {
    this.callbacks = [];
  }

  /**
   * The synchronous part of a checkpoint: the operator's own hook, then its operator state and
   * the key groups changed since the last snapshot (state and timers), encoded — encoding is the
   * copy, so later changes cannot leak into the checkpoint. Costs O(changed key groups).
   */
  snapshotIncremental(checkpointId: number): SubtaskSnapshot {
    this.op.snapshotState(checkpointId);
    const changed = new Map<number, Uint8Array>();
    const deltas: [number, number][] = [];
    const keyed = this.keyed;
    if (keyed !== undefined) {
      const start = keyed.keyGroupRange.start;
      const dirty = keyed.dirty;
      // Whole key groups: written whole; the others only with the keys that changed (a delta),
      // unless they are enough of the group (see worthWritingWhole) or it has had enough deltas.
      const whole = new Uint8Array(dirty.length);
      let anyWhole = false;
      for (let i = 0; i < dirty.length; i++) {
        if (dirty[i] !== 1) continue;
        const keys = keyed.changedKeys[i];
        if (
          this.lastWrite[i]! < 0 ||
          keyed.whole[i] === 1 ||
          keys === undefined ||
          this.deltaCounts[i]! >= MAX_DELTAS_PER_KEY_GROUP ||
          worthWritingWhole(keys.size, keyed.keysInGroup(i))
        ) {
          whole[i] = 1;
          anyWhole = true;
        }
      }
      const timersByGroup = new Map<number, KeyGroupTimers>();
      if (anyWhole)
        for (const [name, svc] of this.timerServices)
          for (const [g, t] of svc.snapshotForCheckpoint(whole)) {
            let entry = timersByGroup.get(g);
            if (entry === undefined) timersByGroup.set(g, (entry = {}));
            entry[name] = t;
          }
      for (let i = 0; i < dirty.length; i++) {
        if (dirty[i] !== 1) continue;
        const g = start + i;
        let kg: KeyGroupState;
        if (whole[i] === 1) {
          kg = { state: keyed.snapshotKeyGroup(g), timers: timersByGroup.get(g) ?? {} };
          this.deltaCounts[i] = 0;
        } else {
          const keys = [...keyed.changedKeys[i]!];
          const timers: KeyGroupTimers = {};
          for (const [name, svc] of this.timerServices) {
            const t = svc.snapshotKeys(keys);
            if (t.event.length > 0 || t.processing.length > 0) timers[name] = t;
          }
          kg = { state: keyed.snapshotKeys(g, keys), timers, replaces: keys };
          deltas.push([g, this.lastWrite[i]!]);
          this.deltaCounts[i]!++;
        }
        changed.set(g, encodeKeyGroupState(kg));
        this.lastWrite[i] = checkpointId;
        keyed.markClean(i);
      }
    }
    return {
      operatorId: this.spec.operatorId,
      subtaskIndex: this.subtaskIndex,
      parallelism: this.spec.parallelism,
      maxParallelism: this.spec.maxParallelism,
      keyed: keyed !== undefined,
      watermark: this.watermark,
      operatorState: encode(this.operatorState.snapshot()),
      changed,
      deltas,
      keyGroupStart: keyed?.keyGroupRange.start ?? 0,
      keyGroupEnd: keyed?.keyGroupRange.end ?? -1,
    };
  }

  /** Marks key groups changed again (their part of a failed checkpoint must be written next time). */
  redirty(keyGroups: Iterable<number>): void {
    const keyed = this.keyed;
    if (keyed === undefined) return;
    // NOTE: the keys a lost delta held are no longer known: the whole group is written next time.
    for (const g of keyGroups) keyed.touchWhole(g - keyed.keyGroupRange.start);
  }

  /** Takes a full snapshot: the operator's own hook, then keyed state, timers and operator state. */
  snapshot(checkpointId: number): OperatorSubtaskState {
    this.op.snapshotState(checkpointId);
    const out: OperatorSubtaskState = {
      operatorId: this.spec.operatorId,
      subtaskIndex: this.subtaskIndex,
      parallelism: this.spec.parallelism,
      maxParallelism: this.spec.maxParallelism,
      operatorState: this.operatorState.snapshot(),
    };
    if (this.keyed !== undefined) {
      const groups = new Map<number, KeyGroupState>();
      const state = this.keyed.snapshot();
      for (const [g, s] of state.groups) groups.set(g, { state: s, timers: {} });
      for (const [name, svc] of this.timerServices) {
        for (const [g, t] of svc.snapshotByKeyGroup()) {
          let entry = groups.get(g);
          if (entry === undefined) groups.set(g, (entry = { state: {}, timers: {} }));
          entry.timers[name] = t;
        }
      }
      out.keyGroups = groups;
    }
    return out;
  }
}

/**
 * What subtask `subtaskIndex` of `parallelism` starts from, given the snapshots of every subtask
 * of the operator's previous run (at any parallelism): the key groups it now owns (with their
 * timers) and its share of the operator state.
 */
export function restoreForSubtask(
  previous: readonly OperatorSubtaskState[],
  subtaskIndex: number,
  parallelism: number,
  maxParallelism: number,
): OperatorRestore {
  const range = KeyGroupRange.forSubtask(subtaskIndex, parallelism, maxParallelism);
  const groups = new Map<number, KeyGroupSnapshot>();
  const timers: Record<string, [number, FlatTimers][]> = {};
  let keyed = false;
  for (const s of previous) {
    if (s.keyGroups === undefined) continue;
    keyed = true;
    if (s.maxParallelism !== maxParallelism)
      throw new TidemarkError(
        'STATE_ERROR',
        `operator ${s.operatorId}: the snapshot was taken with maxParallelism ${s.maxParallelism}, but the job runs it with maxParallelism ${maxParallelism}; maxParallelism cannot change across a restore`,
        { operatorId: s.operatorId },
      );
    for (const [g, kg] of s.keyGroups) {
      if (!range.contains(g)) continue;
      groups.set(g, kg.state);
      for (const [name, t] of Object.entries(kg.timers)) (timers[name] ??= []).push([g, t]);
    }
  }
  const ordered = [...previous].sort((a, b) => a.subtaskIndex - b.subtaskIndex);
  const out: OperatorRestore = {
    operatorState: redistributeOperatorState(
      ordered.map((s) => s.operatorState),
      subtaskIndex,
      parallelism,
    ),
  };
  if (keyed) {
    out.keyed = [{ maxParallelism, groups }];
    out.timers = timers;
  }
  return out;
}
