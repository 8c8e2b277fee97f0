/**
 * Timer services: per operator and name, event-time and processing-time timers scoped to a key and
 * a namespace, at most one per (key, namespace, timestamp), firing in timestamp order (ties in
 * registration order) with their key set as current.
 */
import type { InternalTimerService, NamespaceKeyFn, Timer, Triggerable } from '../../operators/contract.js';
import type { Key } from '../../state/hash.js';
import type { HeapKeyedStateBackend } from '../../state/heap-backend.js';
import { canonicalKey } from '../../state/key-codec.js';

/** A registered timer with what is needed to fire and snapshot it. */
export interface TimerEntry<N = unknown> extends Timer<Key, N> {
  readonly keyGroup: number;
  readonly id: string;
  readonly seq: number;
  deleted: boolean;
}

/** A binary min-heap of timers by (timestamp, seq), with lazy deletion. */
export class TimerHeap<N> {
  private readonly heap: TimerEntry<N>[] = [];
  /** Live timers by id. */
  readonly byId = new Map<string, TimerEntry<N>>();
  private seq = 0;

  get size(): number {
    return this.byId.size;
  }

  add(key: Key, keyGroup: number, namespace: N, nsKey: string | number, timestamp: number): boolean {
    const id = `${keyGroup}|${typeof key === 'string' ? `s${key}` : String(canonicalKey(key))}|${nsKey}|${timestamp}`;
    if (this.byId.has(id)) return false;
    const e: TimerEntry<N> = { key, keyGroup, namespace, timestamp, id, seq: this.seq++, deleted: false };
    this.byId.set(id, e);
    this.heap.push(e);
    this.up(this.heap.length - 1);
    return true;
  }

  remove(key: Key, keyGroup: number, nsKey: string | number, timestamp: number): void {
    const id = `${keyGroup}|${typeof key === 'string' ? `s${key}` : String(canonicalKey(key))}|${nsKey}|${timestamp}`;
    const e = this.byId.get(id);
    if (e === undefined) return;
    e.deleted = true;
    this.byId.delete(id);
  }

  /** The earliest live timer's timestamp, or +Infinity. */
  peekTimestamp(): number {
    this.dropDeleted();
    return this.heap.length === 0 ? Number.POSITIVE_INFINITY : this.heap[0]!.timestamp;
  }

  /** Removes and returns the earliest live timer if its timestamp is <= `time`. */
  pollUpTo(time: number): TimerEntry<N> | undefined {
    this.dropDeleted();
    const top = this.heap[0];
    if (top === undefined || top.timestamp > time) return undefined;
    this.popTop();
    this.byId.delete(top.id);
    return top;
  }

  /** Live timers (unordered). */
  entries(): IterableIterator<TimerEntry<N>> {
    return this.byId.values();
  }

  clear(): void {
    this.heap.length = 0;
    this.byId.clear();
  }

  private dropDeleted(): void {
    while (this.heap.length > 0 && this.heap[0]!.deleted) this.popTop();
  }

  private popTop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.down(0);
    }
  }

  private less(a: TimerEntry<N>, b: TimerEntry<N>): boolean {
    return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.seq < b.seq);
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l;
      if (!this.less(h[c]!, e)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = e;
  }
}

/** The snapshot of one timer. */
export interface TimerSnapshot {
  key: Key;
  keyGroup: number;
  namespace: unknown;
  timestamp: number;
}

/** Hooks the timer service needs from its task. */
export interface TimerHost {
  now(): number;
  currentWatermark(): number;
  /** A processing-time timer at `time` was registered: have the task woken then. */
  scheduleProcessingTime(time: number): void;
}

/** Timers of one operator under one name. */
export class TimerServiceImpl<N> implements InternalTimerService<N> {
  readonly eventTimers = new TimerHeap<N>();
  readonly processingTimers = new TimerHeap<N>();

  constructor(
    readonly name: string,
    private readonly backend: HeapKeyedStateBackend,
    readonly target: Triggerable<Key, N>,
    private readonly nsKey: NamespaceKeyFn<N>,
    private readonly host: TimerHost,
  ) {}

  currentProcessingTime(): number {
    return this.host.now();
  }
  currentWatermark(): number {
    return this.host.currentWatermark();
  }
  /** Marks a key group changed (for incremental checkpoints). */
  private touch(keyGroup: number): void {
    this.backend.dirty[keyGroup - this.backend.keyGroupRange.start] = 1;
  }
  registerEventTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    if (
      this.eventTimers.add(b.getCurrentKey(), b.currentKeyGroup, namespace, this.nsKey(namespace), timestamp)
    )
      this.touch(b.currentKeyGroup);
  }
  deleteEventTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    this.eventTimers.remove(b.getCurrentKey(), b.currentKeyGroup, this.nsKey(namespace), timestamp);
    this.touch(b.currentKeyGroup);
  }
  registerProcessingTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    if (
      this.processingTimers.add(
        b.getCurrentKey(),
        b.currentKeyGroup,
        namespace,
        this.nsKey(namespace),
        timestamp,
      )
    ) {
      this.touch(b.currentKeyGroup);
      this.host.scheduleProcessingTime(timestamp);
    }
  }
  deleteProcessingTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    this.processingTimers.remove(b.getCurrentKey(), b.currentKeyGroup, this.nsKey(namespace), timestamp);
    this.touch(b.currentKeyGroup);
  }
  numEventTimeTimers(): number {
    return this.eventTimers.size;
  }
  numProcessingTimeTimers(): number {
    return this.processingTimers.size;
  }

  /** Fires every event-time timer with timestamp <= watermark. */
  advanceWatermark(watermark: number): void {
    for (;;) {
      const t = this.eventTimers.pollUpTo(watermark);
      if (t === undefined) return;
      this.touch(t.keyGroup);
      this.backend.setCurrentKeyInGroup(t.key, t.keyGroup);
      this.target.onEventTime(t);
    }
  }

  /** Fires every processing-time timer with timestamp <= now. */
  advanceProcessingTime(now: number): void {
    for (;;) {
      const t = this.processingTimers.pollUpTo(now);
      if (t === undefined) return;
      this.touch(t.keyGroup);
      this.backend.setCurrentKeyInGroup(t.key, t.keyGroup);
      this.target.onProcessingTime(t);
    }
  }

  /** Earliest processing-time timer, or +Infinity. */
  nextProcessingTime(): number {
    return this.processingTimers.peekTimestamp();
  }

  /** Every timer, grouped by key group (in registration order within each group). */
  snapshotByKeyGroup(): Map<number, { event: TimerSnapshot[]; processing: TimerSnapshot[] }> {
    const out = new Map<number, { event: TimerSnapshot[]; processing: TimerSnapshot[] }>();
    const add = (h: TimerHeap<N>, kind: 'event' | 'processing') => {
      for (const e of [...h.entries()].sort((a, b) => a.seq - b.seq)) {
        let g = out.get(e.keyGroup);
        if (g === undefined) out.set(e.keyGroup, (g = { event: [], processing: [] }));
        g[kind].push({ key: e.key, keyGroup: e.keyGroup, namespace: e.namespace, timestamp: e.timestamp });
      }
    };
    add(this.eventTimers, 'event');
    add(this.processingTimers, 'processing');
    return out;
  }

  /** Timers of one key group (for checkpoints). */

  snapshotKeyGroup(keyGroup: number): { event: TimerSnapshot[]; processing: TimerSnapshot[] } {
    const pick = (h: TimerHeap<N>) =>
      [...h.entries()]
        .filter((e) => e.keyGroup === keyGroup)
        .sort((a, b) => a.seq - b.seq)
        .map((e) => ({ key: e.key, keyGroup: e.keyGroup, namespace: e.namespace, timestamp: e.timestamp }));
    return { event: pick(this.eventTimers), processing: pick(this.processingTimers) };
  }

  /** Re-registers restored timers. */
  restore(event: readonly TimerSnapshot[], processing: readonly TimerSnapshot[]): void {
    for (const t of event)
      this.eventTimers.add(t.key, t.keyGroup, t.namespace as N, this.nsKey(t.namespace as N), t.timestamp);
    for (const t of processing) {
      this.processingTimers.add(
        t.key,
        t.keyGroup,
        t.namespace as N,
        this.nsKey(t.namespace as N),
        t.timestamp,
      );
      this.host.scheduleProcessingTime(t.timestamp);
    }
  }
}
