/**
 * Timer services: per operator and name, event-time and processing-time timers scoped to a key and
 * a namespace, at most one per (key, namespace, timestamp), firing in timestamp order (ties in
 * registration order) with their key set as current.
 */
import type { InternalTimerService, NamespaceKeyFn, Timer, Triggerable } from '../../operators/contract.js';
import type { Key } from '../../state/hash.js';
import type { HeapKeyedStateBackend } from '../../state/heap-backend.js';
import { canonicalKey, type MapKey } from '../../state/key-codec.js';

/** A registered timer with what is needed to fire and snapshot it. */
export interface TimerEntry<N = unknown> extends Timer<Key, N> {
  readonly keyGroup: number;
  /** Canonical form of the key. */
  readonly mapKey: MapKey;
  readonly nsKey: string | number;
  readonly seq: number;
  deleted: boolean;
  /** The next live timer of the same key. */
  next: TimerEntry<N> | undefined;
}

/**
 * A binary min-heap of timers by (timestamp, seq), with lazy deletion. Lookups go by key: a key's
 * live timers form a short chain (usually one), so registering needs no id string.
 */
export class TimerHeap<N> {
  private readonly heap: TimerEntry<N>[] = [];
  /** The live timers of each key (canonical form). */
  private readonly byKey = new Map<MapKey, TimerEntry<N>>();
  /** Live timers in registration order. */
  private readonly live = new Set<TimerEntry<N>>();
  private seq = 0;

  get size(): number {
    return this.live.size;
  }

  add(
    key: Key,
    mapKey: MapKey,
    keyGroup: number,
    namespace: N,
    nsKey: string | number,
    timestamp: number,
  ): boolean {
    const head = this.byKey.get(mapKey);
    for (let e = head; e !== undefined; e = e.next)
      if (e.timestamp === timestamp && e.nsKey === nsKey) return false;
    const e: TimerEntry<N> = {
      key,
      mapKey,
      keyGroup,
      namespace,
      nsKey,
      timestamp,
      seq: this.seq++,
      deleted: false,
      next: head,
    };
    this.byKey.set(mapKey, e);
    this.live.add(e);
    this.heap.push(e);
    this.up(this.heap.length - 1);
    return true;
  }

  remove(mapKey: MapKey, nsKey: string | number, timestamp: number): void {
    for (let e = this.byKey.get(mapKey); e !== undefined; e = e.next)
      if (e.timestamp === timestamp && e.nsKey === nsKey) {
        this.unlink(e);
        e.deleted = true;
        return;
      }
  }

  private unlink(e: TimerEntry<N>): void {
    this.live.delete(e);
    const head = this.byKey.get(e.mapKey)!;
    if (head === e) {
      if (e.next === undefined) this.byKey.delete(e.mapKey);
      else this.byKey.set(e.mapKey, e.next);
      return;
    }
    let prev = head;
    while (prev.next !== e) prev = prev.next!;
    prev.next = e.next;
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
    this.unlink(top);
    return top;
  }

  /** The most recent live timer of one key (canonical form); `next` leads to the others. */
  head(mapKey: MapKey): TimerEntry<N> | undefined {
    return this.byKey.get(mapKey);
  }

  /** Live timers, in registration order. */
  entries(): IterableIterator<TimerEntry<N>> {
    return this.live.values();
  }

  clear(): void {
    this.heap.length = 0;
    this.byKey.clear();
    this.live.clear();
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

/** The timers of one key group in a snapshot: `[key, namespace, timestamp, ...]` per domain. */
export interface FlatTimers {
  event: unknown[];
  processing: unknown[];
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
  /** Marks the current key changed (for incremental checkpoints). */
  private touch(): void {
    this.backend.touch();
  }
  registerEventTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    if (
      this.eventTimers.add(
        b.getCurrentKey(),
        b.mapKey,
        b.currentKeyGroup,
        namespace,
        this.nsKey(namespace),
        timestamp,
      )
    )
      this.touch();
  }
  deleteEventTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    b.getCurrentKey();
    this.eventTimers.remove(b.mapKey, this.nsKey(namespace), timestamp);
    this.touch();
  }
  registerProcessingTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    if (
      this.processingTimers.add(
        b.getCurrentKey(),
        b.mapKey,
        b.currentKeyGroup,
        namespace,
        this.nsKey(namespace),
        timestamp,
      )
    ) {
      this.touch();
      this.host.scheduleProcessingTime(timestamp);
    }
  }
  deleteProcessingTimeTimer(namespace: N, timestamp: number): void {
    const b = this.backend;
    b.getCurrentKey();
    this.processingTimers.remove(b.mapKey, this.nsKey(namespace), timestamp);
    this.touch();
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
      this.backend.setCurrentKeyInGroup(t.key, t.keyGroup, t.mapKey);
      this.touch();
      this.target.onEventTime(t);
    }
  }

  /** Fires every processing-time timer with timestamp <= now. */
  advanceProcessingTime(now: number): void {
    for (;;) {
      const t = this.processingTimers.pollUpTo(now);
      if (t === undefined) return;
      this.backend.setCurrentKeyInGroup(t.key, t.keyGroup, t.mapKey);
      this.touch();
      this.target.onProcessingTime(t);
    }
  }

  /** Earliest processing-time timer, or +Infinity. */
  nextProcessingTime(): number {
    return this.processingTimers.peekTimestamp();
  }

  /**
   * Timers grouped by key group, as flat arrays `[key, namespace, timestamp, ...]` (cheap to
   * encode), in registration order within each group. With `only`, just the key groups it marks
   * (by index in the backend's range).
   */
  snapshotByKeyGroup(only?: Uint8Array): Map<number, FlatTimers> {
    const out = new Map<number, FlatTimers>();
    const start = this.backend.keyGroupRange.start;
    const add = (h: TimerHeap<N>, kind: 'event' | 'processing') => {
      for (const e of h.entries()) {
        if (only !== undefined && only[e.keyGroup - start] !== 1) continue;
        let g = out.get(e.keyGroup);
        if (g === undefined) out.set(e.keyGroup, (g = { event: [], processing: [] }));
        g[kind].push(e.key, e.namespace, e.timestamp);
      }
    };
    add(this.eventTimers, 'event');
    add(this.processingTimers, 'processing');
    return out;
  }

  /**
   * The timers of some keys (canonical forms), flat as {@link snapshotByKeyGroup} gives them, in
   * registration order per key.
   */
  snapshotKeys(keys: readonly MapKey[]): FlatTimers {
    const pick = (h: TimerHeap<N>) => {
      const flat: unknown[] = [];
      for (const k of keys) {
        const head = h.head(k);
        if (head === undefined) continue;
        if (head.next === undefined) flat.push(head.key, head.namespace, head.timestamp);
        else {
          const chain: TimerEntry<N>[] = [];
          for (let e: TimerEntry<N> | undefined = head; e !== undefined; e = e.next) chain.push(e);
          chain.sort((a, b) => a.seq - b.seq);
          for (const e of chain) flat.push(e.key, e.namespace, e.timestamp);
        }
      }
      return flat;
    };
    return { event: pick(this.eventTimers), processing: pick(this.processingTimers) };
  }

  /** Re-registers restored timers of one key group (flat, as {@link snapshotByKeyGroup} gives). */
  restore(keyGroup: number, timers: FlatTimers): void {
    const { event, processing } = timers;
    for (let i = 0; i < event.length; i += 3) {
      const ns = event[i + 1] as N;
      const key = event[i] as Key;
      this.eventTimers.add(key, canonicalKey(key), keyGroup, ns, this.nsKey(ns), event[i + 2] as number);
    }
    for (let i = 0; i < processing.length; i += 3) {
      const ns = processing[i + 1] as N;
      const t = processing[i + 2] as number;
      const key = processing[i] as Key;
      this.processingTimers.add(key, canonicalKey(key), keyGroup, ns, this.nsKey(ns), t);
      this.host.scheduleProcessingTime(t);
    }
  }
}
