/**
 * The runtime side of one operator subtask: its context (state backends, timer services,
 * processing-time callbacks, watermark), its snapshot and its restore. Tasks hold one per chained
 * operator; the test harness of `tidemark/testing` holds one on its own.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
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
import { worthWritingWhole } from '../../state/heap-backend.js';
import type { MapKey } from '../../state/key-codec.js';
import { KeyGroupRange } from '../../state/key-groups.js';
import type { KeyedStateBackend, SnapshotPart } from '../../state/keyed-backend.js';

import { OperatorStateStore } from '../../state/operator-state.js';
import { encode } from '../../state/snapshot/format.js';
import { type EncodableKeyGroup, encodeKeyGroupSnapshot } from '../../state/snapshot/key-group-codec.js';
import { RELEASABLE_RESTORES } from '../../state/snapshot/redistribute.js';
import {
  type IncrementalSnapshot,
  type KeyGroupSnapshot,
  MAX_DELTAS_PER_KEY_GROUP,
  type OperatorSubtaskState,
} from '../../state/snapshot/types.js';
import { createKeyedStateBackend, type StateBackendConfig } from '../../state/state-backends.js';
import type { OperatorMetrics } from './metrics.js';
import { type CollectedTimers, TimerServiceImpl } from './timers.js';

/** Work between event-loop turns while a checkpoint's deferred key groups are encoded (ms). */
const ENCODE_SLICE_MS = 10;

/** The operator a runtime runs: identity, parallelism and how to create it. */
export interface OperatorSpec {
  readonly operatorId: string;
  readonly name: string;
  readonly parallelism: number;
  readonly maxParallelism: number;
  readonly keyed: boolean;
  /** Keyed operators: where their state lives (undefined: the heap). */
  readonly stateBackend?: StateBackendConfig | undefined;
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
  /** Take checkpoint snapshots whole in their synchronous part (see `SchedulingPolicy`). */
  readonly snapshotsInSyncPart?: boolean;
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
  readonly keyed: KeyedStateBackend | undefined;
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
    restore: OperatorSubtaskState | undefined,
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
      ? createKeyedStateBackend(spec.stateBackend, {
          maxParallelism: spec.maxParallelism,
          keyGroupRange: KeyGroupRange.forSubtask(subtaskIndex, spec.parallelism, spec.maxParallelism),
          now: () => host.clock.now(),
          owner: describe(),
        })
      : undefined;
    const groups = this.keyed?.keyGroupRange.size ?? 0;
    this.lastWrite = new Float64Array(groups).fill(-1);
    this.deltaCounts = new Uint8Array(groups);
    const restoredGroups = restore?.keyGroups;
    if (this.keyed !== undefined && restoredGroups !== undefined) {
      this.deferRestore(this.keyed, restoredGroups, RELEASABLE_RESTORES.has(restore!));
      this.restoredShared = restore?.sharedBase !== undefined;
    }
    this.operatorState = new OperatorStateStore(describe());
    if (restore?.operatorState !== undefined) this.operatorState.restore(restore.operatorState);
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
          wakeAt: (t) => host.wakeAt(t),
        });
        // Timers of the key groups installed already (see deferRestore; the others come with them).
        if (restoredGroups !== undefined)
          for (const [g, kg] of restoredGroups) {
            const t = kg.timers[name];
            if (t !== undefined && keyed.keyGroupRange.contains(g) && !keyed.isPending(g)) svc.restore(g, t);
          }
        self.timerServices.set(name, svc as unknown as TimerServiceImpl<unknown>);
        return svc;
      },
      advanceWatermark(watermark: number): void {
        if (self.pendingEventTimers !== undefined) self.installDue(self.pendingEventTimers, watermark);
        self.watermark = watermark;
        for (const svc of self.timerServices.values()) svc.advanceWatermark(watermark);
      },
      wakeUp: () => host.wakeUp(),
      wakeAt: (t) => host.wakeAt(t),
      wakeWhenIdle: () => host.wakeWhenIdle(),
      registerProcessingTimer: (time, callback) => self.registerCallback(time, callback),
      watermarkAlignment: (group) => host.alignmentGroup(group),
      blockOn: (promise) => host.blockOn(promise),
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

  /**
   * Restores key groups as they are needed rather than all before the first record (a restore of
   * a large state then reaches its first record in the time it takes to read the checkpoint): a
   * group is installed — its state into the backend, its timers into the timer services — when a
   * key of it is first set, when its earliest event-time timer comes due with a watermark, or its
   * earliest processing-time timer with the clock, and every group still pending before a snapshot
   * or anything that lists keys. Results are those of an eager restore: nothing reads a group
   * before it is installed, and no timer can come due before its group is. One difference: timers
   * of different keys with the same timestamp fire in the order their groups were installed, not
   * in key-group order (Flink promises no order among such timers either).
   */
  private deferRestore(
    keyed: KeyedStateBackend,
    groups: ReadonlyMap<number, KeyGroupSnapshot>,
    releasable: boolean,
  ): void {
    const owned = new Map<number, KeyGroupSnapshot>();
    const event = new Map<number, number>();
    const processing = new Map<number, number>();
    const earliest = (flat: readonly unknown[]) => {
      let min = Number.POSITIVE_INFINITY;
      for (let i = 2; i < flat.length; i += 3) if ((flat[i] as number) < min) min = flat[i] as number;
      return min;
    };
    for (const [g, kg] of groups) {
      if (!keyed.keyGroupRange.contains(g)) continue;
      owned.set(g, kg);
      let e = Number.POSITIVE_INFINITY;
      let p = Number.POSITIVE_INFINITY;
      for (const t of Object.values(kg.timers)) {
        e = Math.min(e, earliest(t.event));
        p = Math.min(p, earliest(t.processing));
      }
      if (e !== Number.POSITIVE_INFINITY) event.set(g, e);
      if (p !== Number.POSITIVE_INFINITY) processing.set(g, p);
    }
    if (owned.size === 0) return;
    if (event.size > 0) this.pendingEventTimers = event;
    if (processing.size > 0) {
      this.pendingProcessingTimers = processing;
      this.host.wakeAt(Math.min(...processing.values()));
    }
    keyed.deferRestore(
      [...owned].map(([g, kg]) => [g, kg.state] as const),
      (g) => {
        const kg = owned.get(g)!;
        owned.delete(g);
        this.pendingEventTimers?.delete(g);
        this.pendingProcessingTimers?.delete(g);
        keyed.restoreKeyGroup(g, kg.state);
        // NOTE: the backend has copied the tables (into Maps, or into LMDB): a restore decoded
        // for this run alone drops them, keeping the timers, which timer services restore later.
        if (releasable) kg.state = {};
        for (const [name, svc] of this.timerServices) {
          const t = kg.timers[name];
          if (t !== undefined) svc.restore(g, t);
        }
      },
    );
  }

  /**
   * The checkpoints refer to the restored chunks of key groups not installed yet (see
   * `OperatorSubtaskState.sharedBase`): a checkpoint leaves them pending, and writes only the
   * groups installed and changed since. Otherwise the first checkpoint installs and writes them.
   */
  private restoredShared = false;

  /** Per pending key group: its earliest event-time timer (see {@link deferRestore}). */
  private pendingEventTimers: Map<number, number> | undefined = undefined;
  /** Per pending key group: its earliest processing-time timer. */
  private pendingProcessingTimers: Map<number, number> | undefined = undefined;

  /** Installs the pending key groups with a timer at or before `time`, in key-group order. */
  private installDue(earliest: Map<number, number>, time: number): void {
    if (earliest.size === 0) return;
    const due = [...earliest].filter(([, t]) => t <= time).map(([g]) => g);
    if (due.length === 0) return;
    due.sort((a, b) => a - b);
    const keyed = this.keyed!;
    for (const g of due) keyed.installPending(g - keyed.keyGroupRange.start);
  }

  /** Installs every restored key group not installed yet (see {@link deferRestore}). */
  installRestoredState(): void {
    this.keyed?.installAllPending();
  }

  /** Fires due processing-time callbacks and timers; returns the next time it needs, or +Infinity. */
  fireProcessingTime(now: number): number {
    if (this.pendingProcessingTimers !== undefined) this.installDue(this.pendingProcessingTimers, now);
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
    if (this.pendingProcessingTimers !== undefined)
      for (const t of this.pendingProcessingTimers.values()) next = Math.min(next, t);
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
  snapshotIncremental(checkpointId: number): IncrementalSnapshot {
    if (!this.restoredShared) this.installRestoredState();
    this.op.snapshotState(checkpointId);
    const changed = new Map<number, Uint8Array>();
    const deltas: [number, number][] = [];
    const keyed = this.keyed;
    let later: SnapshotPart[] | undefined;
    const deltaTimers = new Map<number, KeyGroupSnapshot['timers']>();
    let wholeGroups: number[] | undefined;
    let pendingKeyGroups: number[] | undefined;
    let pending: Promise<void> | undefined;
    if (keyed !== undefined) {
      const start = keyed.keyGroupRange.start;
      const dirty = keyed.dirty;
      // Whole key groups: written whole; the others only with the keys that changed (a delta),
      // unless they are enough of the group (see worthWritingWhole) or it has had enough deltas.
      const whole = new Uint8Array(dirty.length);
      let anyWhole = false;
      for (let i = 0; i < dirty.length; i++) {
        if (dirty[i] !== 1) continue;
        const keys = keyed.changedKeysOf(i);
        if (
          this.lastWrite[i]! < 0 ||
          keyed.whole[i] === 1 ||
          keys === undefined ||
          this.deltaCounts[i]! >= MAX_DELTAS_PER_KEY_GROUP ||
          worthWritingWhole(keys.length, keyed.keysInGroup(i))
        ) {
          whole[i] = 1;
          anyWhole = true;
        }
      }
      // The timers of whole groups, walked later (see TimerServiceImpl.snapshotForCheckpoint).
      const collections: [string, CollectedTimers][] = [];
      if (anyWhole)
        for (const [name, svc] of this.timerServices)
          collections.push([name, svc.snapshotForCheckpoint(whole)]);
      const timersOf = (g: number): EncodableKeyGroup['timers'] => {
        const timers: EncodableKeyGroup['timers'] = {};
        for (const [name, c] of collections) {
          const t = c.get(g);
          if (t !== undefined) timers[name] = t;
        }
        return timers;
      };
      for (let i = 0; i < dirty.length; i++) {
        if (dirty[i] !== 1) continue;
        const g = start + i;
        let kg: EncodableKeyGroup;
        if (keyed.readsLater) {
          // NOTE: read later (LMDB), whole or as a delta; the timers are collected now.
          if (whole[i] === 1) {
            (later ??= []).push({ keyGroup: g });
            this.deltaCounts[i] = 0;
          } else {
            const keys = [...keyed.changedKeysOf(i)!];
            (later ??= []).push({ keyGroup: g, keys });
            deltaTimers.set(g, this.timersOfKeys(keys));
            deltas.push([g, this.lastWrite[i]!]);
            this.deltaCounts[i]!++;
          }
          this.lastWrite[i] = checkpointId;
          keyed.markClean(i);
          continue;
        }
        if (whole[i] === 1) {
          // NOTE: taken below, now or copy-on-write (see snapshotWholeLater).
          (wholeGroups ??= []).push(g);
          this.deltaCounts[i] = 0;
          this.lastWrite[i] = checkpointId;
          keyed.markClean(i);
          continue;
        } else {
          const keys = [...keyed.changedKeysOf(i)!];
          kg = { state: keyed.snapshotKeys(g, keys), timers: this.timersOfKeys(keys), replaces: keys };
          deltas.push([g, this.lastWrite[i]!]);
          this.deltaCounts[i]!++;
        }
        changed.set(g, encodeKeyGroupSnapshot(kg));
        this.lastWrite[i] = checkpointId;
        keyed.markClean(i);
      }
      if (wholeGroups !== undefined) {
        // A group taken now is encoded now (its values may be objects the job changes in place);
        // one taken later holds only values nothing can change but a write: its columns wait for
        // the timers' walk, and are encoded once both are done.
        let now = true;
        const columns = new Map<number, EncodableKeyGroup['state']>();
        const take = (g: number) => {
          const state = keyed.snapshotKeyGroupForCheckpoint(g);
          if (now) changed.set(g, encodeKeyGroupSnapshot({ state, timers: timersOf(g) }));
          else columns.set(g, state);
        };
        let taking: Promise<void> | undefined;
        if (this.host.snapshotsInSyncPart === true) for (const g of wholeGroups) take(g);
        else taking = keyed.snapshotWholeLater(wholeGroups, take);
        now = false;
        const walks: Promise<void>[] = [];
        for (const [, c] of collections) if (c.pending !== undefined) walks.push(c.pending);
        if (taking !== undefined || walks.length > 0) {
          pendingKeyGroups = wholeGroups;
          pending = (async () => {
            await Promise.all([taking, ...walks]);
            let slice = performance.now();
            for (const [g, state] of columns) {
              if (performance.now() - slice > ENCODE_SLICE_MS) {
                await nextTurn();
                slice = performance.now();
              }
              changed.set(g, encodeKeyGroupSnapshot({ state, timers: timersOf(g) }));
            }
          })();
        }
      }
      // NOTE: whole key groups of a backend that reads them later (LMDB) are read from a read
      // transaction opened now, each encoded in an event-loop turn of its own; the timers were
      // collected above (collections nobody mutates).
      if (later !== undefined) {
        const replaces = new Map<number, MapKey[]>();
        for (const p of later) if (p.keys !== undefined) replaces.set(p.keyGroup, p.keys as MapKey[]);
        pendingKeyGroups = later.map((p) => p.keyGroup);
        pending = keyed.snapshotKeyGroupsLater(later, (g, state) => {
          const keys = replaces.get(g);
          changed.set(
            g,
            encodeKeyGroupSnapshot(
              keys === undefined
                ? { state, timers: timersOf(g) }
                : { state, timers: deltaTimers.get(g) ?? {}, replaces: keys },
            ),
          );
        });
      }
    }
    // NOTE: marked handled now: the task attaches its handler only once the checkpoints before
    // this one are acknowledged, and not at all when a later operator's snapshot fails; a
    // snapshot abandoned meanwhile (the task failed) must not be an unhandled rejection.
    pending?.catch(() => {});
    return {
      ...(pending === undefined ? {} : { pending, pendingKeyGroups: pendingKeyGroups! }),
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

  /** Drops the keyed state and abandons a checkpoint's snapshot under way (the operator closed). */
  disposeState(): void {
    for (const svc of this.timerServices.values()) svc.dispose();
    this.keyed?.dispose();
  }

  /** The timers of some keys (canonical forms), by timer service: a delta's timers. */
  private timersOfKeys(keys: readonly MapKey[]): KeyGroupSnapshot['timers'] {
    const timers: KeyGroupSnapshot['timers'] = {};
    for (const [name, svc] of this.timerServices) {
      const t = svc.snapshotKeys(keys);
      if (t.event.length > 0 || t.processing.length > 0) timers[name] = t;
    }
    return timers;
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
    this.installRestoredState();
    this.op.snapshotState(checkpointId);
    const out: OperatorSubtaskState = {
      operatorId: this.spec.operatorId,
      subtaskIndex: this.subtaskIndex,
      parallelism: this.spec.parallelism,
      maxParallelism: this.spec.maxParallelism,
      operatorState: this.operatorState.snapshot(),
    };
    if (this.keyed !== undefined) {
      const groups = new Map<number, KeyGroupSnapshot>();
      for (const [g, s] of this.keyed.snapshot()) groups.set(g, { state: s, timers: {} });
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
