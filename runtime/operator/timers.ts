/**
 * Timer services: per operator and name, event-time and processing-time timers scoped to a key and
 * a namespace, at most one per (key, namespace, timestamp), firing in timestamp order (ties in
 * registration order) with their key set as current.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { InternalTimerService, NamespaceKeyFn, Timer, Triggerable } from '../../operators/contract.js';
import { StateError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { canonicalKey, type MapKey } from '../../state/key-codec.js';
import type { KeyedStateBackend } from '../../state/keyed-backend.js';
import { type TimerColumns, TimerColumnsBuilder } from '../../state/snapshot/key-group-codec.js';
import type { TimersSnapshot } from '../../state/snapshot/types.js';
import { KeyIndex } from './key-index.js';

/** A live timer's key when it is an array: the key and its canonical form (a string). */
class ArrayKey {
  constructor(
    readonly key: Key,
    readonly mapKey: MapKey,
  ) {}
}

/** No timer (the end of a chain, an empty free list). */
const NONE = -1;

/** `seq` of a deleted timer. */
const DELETED = -1;

/** Flag: a bucket or the round's put-aside list refers to the timer (its slot is not reused yet). */
const REFERENCED = 1;

/** The timers of one timestamp (slots), in registration order; `pos` is where polling goes on. */
interface Bucket {
  readonly entries: number[];
  pos: number;
}

/**
 * A timestamp's timers: a {@link Bucket}, or the slot of its one timer (live or deleted) while it
 * has only one. NOTE: timers whose timestamps are all distinct (an auction's end, a session's)
 * then cost no object and no array each, and no pointer to follow when they come due (measured
 * on Nexmark q4, where the timer service was a fifth of the run).
 */
type Timestamped = Bucket | number;

/**
 * A walk of a {@link TimerHeap}'s live timers as they were when {@link TimerHeap.walkLater} began
 * it, in pieces: {@link step} visits timers until its time is up, {@link finish} the rest.
 */
export class TimerWalk {
  private r = 0;
  private i: number;
  constructor(
    private readonly heap: { seqOf(slot: number): number },
    private readonly ranges: readonly number[][],
    private readonly from: readonly number[],
    private readonly to: readonly number[],
  ) {
    this.i = from[0] ?? 0;
  }
  /** Visits timers with `f` until `deadline` (performance.now(), checked every 1024); true when done. */
  step(f: (slot: number) => void, deadline: number): boolean {
    const heap = this.heap;
    while (this.r < this.ranges.length) {
      const entries = this.ranges[this.r]!;
      const end = this.to[this.r]!;
      let i = this.i;
      while (i < end) {
        const e = entries[i++]!;
        if (heap.seqOf(e) !== DELETED) f(e);
        if ((i & 1023) === 0 && performance.now() > deadline) {
          this.i = i;
          return false;
        }
      }
      this.r++;
      this.i = this.from[this.r] ?? 0;
    }
    return true;
  }
  /** Visits the rest. */
  finish(f: (slot: number) => void): void {
    this.step(f, Number.POSITIVE_INFINITY);
  }
}

/**
 * Timers in timestamp order (ties in registration order), with lazy deletion: a min-heap of the
 * distinct timestamps, and per timestamp a bucket of its timers in registration order. Windows
 * give many timers the same timestamp (every key's window ends together), so registering is
 * mostly an append and firing a walk along an array; the heap only orders the distinct times.
 * Lookups go by key: a key's live timers form a short chain (usually one), so registering needs
 * no id string. Namespaces are the same when they are the same object, or else when their
 * canonical forms (`nsKeyOf`) are equal: a window merged anew each element (sessions) is
 * registered and deleted by the same object, so its canonical string is never built.
 *
 * NOTE: columnar (issue 16, a compact heap layout): a timer is a slot, a number, and its fields
 * are columns, typed arrays for the numbers (timestamp, order, key group, chain) and arrays for
 * the key and namespace, so a timer costs about 50 bytes of heap rather than an object of eight
 * fields and a boxed timestamp (about 110). A slot is reused once nothing refers to it: a deleted
 * timer's when its bucket passes it, a fired one's when its firing round ends.
 */
export class TimerHeap<N> {
  /** Distinct timestamps that have a bucket, as a binary min-heap. */
  private readonly times: number[] = [];
  private readonly buckets = new KeyIndex<Timestamped>();
  /** The bucket of the timer {@link first} found: undefined when it is its timestamp's one timer. */
  private firstBucket: Bucket | undefined = undefined;
  /** The live timers of each key (canonical form): the most recent one's slot. */
  private readonly byKey = new KeyIndex<number>();
  private live = 0;
  private seq = 0;
  /** Moves in place since the last walk found no entry out of its bucket (see {@link forEach}). */
  private moved = 0;

  // ---- the columns, by slot ----
  /** Slots the columns hold. */
  private capacity = 0;
  /** Slots ever used (the free ones below it are chained from `free` through `nexts`). */
  private used = 0;
  private free = NONE;
  /** The key, or an {@link ArrayKey} for an array key. */
  private keys: unknown[] = [];
  private namespaces: N[] = [];
  private stamps = new Float64Array(0);
  /**
   * When it was registered (or moved), for the order of timers with equal timestamps; -1 once
   * deleted.
   */
  private seqs = new Float64Array(0);
  private groups = new Int32Array(0);
  /** The next live timer of the same key ({@link NONE}: none); the next free slot of a free one. */
  private nexts = new Int32Array(0);
  private flags = new Uint8Array(0);
  /** The namespaces' canonical forms, computed when first needed (see {@link find}); made then. */
  private nsKeys: (string | number | undefined)[] | undefined;

  /**
   * Called (once) before the next change that could alter what a walk begun by
   * {@link walkLater} visits: its owner finishes the walk then (see `TimerServiceImpl`).
   */
  private beforeChange: (() => void) | undefined = undefined;

  constructor(private readonly nsKeyOf: NamespaceKeyFn<N>) {}

  private changing(): void {
    const f = this.beforeChange;
    if (f === undefined) return;
    this.beforeChange = undefined;
    f();
  }

  /**
   * The live timers as they are now, in {@link forEach}'s order, for a walk that happens later
   * ({@link TimerWalk}): the buckets' ranges of entries, O(distinct timestamps). `beforeChange` is
   * called before anything changes that the walk would read (a timer deleted, moved or fired and
   * its slot given back, a restore, a clear); timers added meanwhile go after the ranges, into
   * slots no range holds, so they are not seen. Undefined when timers moved in place and not yet
   * into their buckets (their order needs {@link forEach}'s sort): walk now then.
   */
  walkLater(beforeChange: () => void): TimerWalk | undefined {
    if (this.moved > 0) return undefined;
    const times = (this.buckets.keyList() as number[]).sort((a, b) => a - b);
    const ranges: number[][] = [];
    const from: number[] = [];
    const to: number[] = [];
    for (const t of times) {
      const b = this.buckets.get(t)!;
      if (typeof b === 'number') {
        ranges.push([b]);
        from.push(0);
        to.push(1);
        continue;
      }
      if (b.pos === b.entries.length) continue;
      ranges.push(b.entries);
      from.push(b.pos);
      to.push(b.entries.length);
    }
    this.beforeChange = beforeChange;
    return new TimerWalk(this, ranges, from, to);
  }

  /** Forgets the walk's hook (it finished). */
  walked(): void {
    this.beforeChange = undefined;
  }

  get size(): number {
    return this.live;
  }

  /** The key of the timer in `slot`. */
  keyOf(slot: number): Key {
    const k = this.keys[slot];
    // NOTE: keys are primitives, so an object is an ArrayKey (cheaper to test than instanceof).
    return typeof k === 'object' ? (k as ArrayKey).key : (k as Key);
  }
  /** The canonical form of the key of the timer in `slot`. */
  mapKeyOf(slot: number): MapKey {
    const k = this.keys[slot];
    return typeof k === 'object' ? (k as ArrayKey).mapKey : (k as MapKey);
  }
  namespaceOf(slot: number): N {
    return this.namespaces[slot]!;
  }
  timestampOf(slot: number): number {
    return this.stamps[slot]!;
  }
  keyGroupOf(slot: number): number {
    return this.groups[slot]!;
  }
  /** Registration order of the timer in `slot` (-1 once deleted). */
  seqOf(slot: number): number {
    return this.seqs[slot]!;
  }
  /** The next live timer of the same key as the one in `slot`, or -1. */
  nextOf(slot: number): number {
    return this.nexts[slot]!;
  }

  /** The most recent live timer of one key (canonical form), or -1; {@link nextOf} leads to the others. */
  head(mapKey: MapKey): number {
    return this.byKey.get(mapKey) ?? NONE;
  }

  /** A slot for a new timer. */
  private allocate(): number {
    const f = this.free;
    if (f !== NONE) {
      this.free = this.nexts[f]!;
      return f;
    }
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  private grow(): void {
    const cap = Math.max(64, this.capacity * 2);
    const widen = <T extends Float64Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.stamps = widen(this.stamps, (n) => new Float64Array(n));
    this.seqs = widen(this.seqs, (n) => new Float64Array(n));
    this.groups = widen(this.groups, (n) => new Int32Array(n));
    this.nexts = widen(this.nexts, (n) => new Int32Array(n));
    this.flags = widen(this.flags, (n) => new Uint8Array(n));
    this.capacity = cap;
  }

  /** Gives back the slot of a timer nothing refers to any more. */
  private release(slot: number): void {
    if (this.beforeChange !== undefined) this.changing();
    this.keys[slot] = undefined;
    this.namespaces[slot] = undefined as N;
    if (this.nsKeys !== undefined) this.nsKeys[slot] = undefined;
    this.flags[slot] = 0;
    this.nexts[slot] = this.free;
    this.free = slot;
  }

  /** The canonical form of the namespace of the timer in `slot`, cached. */
  private nsKeyAt(slot: number): string | number {
    let cache = this.nsKeys;
    if (cache === undefined) this.nsKeys = cache = [];
    let k = cache[slot];
    if (k === undefined) {
      // NOTE: filled up to `slot` so the array stays packed (holes make every access slower).
      while (cache.length < slot) cache.push(undefined);
      cache[slot] = k = this.nsKeyOf(this.namespaces[slot]!);
    }
    return k;
  }

  /**
   * The timer of the chain from `head` at `timestamp` in `namespace`, or -1. The namespace's key
   * is computed only if a timer at that time has another namespace object, and then once.
   */
  private find(head: number, namespace: N, timestamp: number): number {
    let sought: string | number | undefined;
    const stamps = this.stamps;
    for (let e = head; e !== NONE; e = this.nexts[e]!) {
      if (stamps[e] !== timestamp) continue;
      if (this.namespaces[e] === namespace) return e;
      if (sought === undefined) sought = this.nsKeyOf(namespace);
      if (this.nsKeyAt(e) === sought) return e;
    }
    return NONE;
  }

  add(key: Key, mapKey: MapKey, keyGroup: number, namespace: N, timestamp: number): boolean {
    const head = this.byKey.get(mapKey) ?? NONE;
    if (this.find(head, namespace, timestamp) !== NONE) return false;
    this.enqueue(this.link(key, mapKey, keyGroup, namespace, timestamp, head));
    return true;
  }

  /** A new live timer at the head of its key's chain (`head`: the chain so far), not yet queued. */
  private link(
    key: Key,
    mapKey: MapKey,
    keyGroup: number,
    namespace: N,
    timestamp: number,
    head: number,
  ): number {
    const e = this.allocate();
    const k = key === mapKey ? key : new ArrayKey(key, mapKey);
    if (e === this.keys.length) {
      this.keys.push(k);
      this.namespaces.push(namespace);
    } else {
      this.keys[e] = k;
      this.namespaces[e] = namespace;
    }
    this.stamps[e] = timestamp;
    this.seqs[e] = this.seq++;
    this.groups[e] = keyGroup;
    this.nexts[e] = head;
    this.byKey.set(mapKey, e);
    this.live++;
    return e;
  }

  /**
   * Adds timers of one key group, flat `[key, namespace, timestamp, ...]` as a snapshot holds them
   * (a restore): {@link add} for each, without a lookup per timer where the key has no timer yet
   * and with the bucket of the previous timer reused (a window's timers share their timestamp).
   */
  addAll(flat: readonly unknown[], keyGroup: number): void {
    if (this.beforeChange !== undefined) this.changing();
    let bucket: Bucket | undefined;
    let bucketTime = Number.NaN;
    for (let i = 0; i < flat.length; i += 3) {
      const key = flat[i] as Key;
      const namespace = flat[i + 1] as N;
      const timestamp = flat[i + 2] as number;
      const mapKey = canonicalKey(key);
      const head = this.byKey.get(mapKey) ?? NONE;
      if (head !== NONE && this.find(head, namespace, timestamp) !== NONE) continue;
      const e = this.link(key, mapKey, keyGroup, namespace, timestamp, head);
      if (timestamp === bucketTime && bucket !== undefined) {
        bucket.entries.push(e);
        this.flags[e] = REFERENCED;
        continue;
      }
      bucket = this.enqueue(e);
      bucketTime = timestamp;
    }
  }

  /**
   * Puts a timer that moved later (see {@link move}) in its timestamp's bucket, after the entries
   * registered (or moved) before it: the place deleting and registering it would have given it.
   */
  private requeue(e: number): void {
    const t = this.stamps[e]!;
    const b = this.buckets.get(t);
    if (b === undefined) {
      this.buckets.set(t, e);
      this.up(t);
      return;
    }
    const seqs = this.seqs;
    if (typeof b === 'number') {
      this.buckets.set(t, { entries: seqs[b]! > seqs[e]! ? [e, b] : [b, e], pos: 0 });
      return;
    }
    const entries = b.entries;
    const seq = seqs[e]!;
    let i = entries.length;
    while (i > b.pos && seqs[entries[i - 1]!]! > seq) i--;
    if (i === entries.length) entries.push(e);
    else entries.splice(i, 0, e);
  }

  /**
   * Puts a live timer in its timestamp's bucket; returns that bucket, or undefined when the timer
   * is its timestamp's only one.
   */
  private enqueue(e: number): Bucket | undefined {
    const t = this.stamps[e]!;
    this.flags[e] = REFERENCED;
    const b = this.buckets.get(t);
    if (b === undefined) {
      this.buckets.set(t, e);
      this.up(t);
      return undefined;
    }
    if (typeof b === 'number') {
      const bucket: Bucket = { entries: [b, e], pos: 0 };
      this.buckets.set(t, bucket);
      return bucket;
    }
    b.entries.push(e);
    return b;
  }

  /**
   * Moves the timer of a key at `from` in `namespace` to `to`, as if it were deleted and
   * registered again at `to` (it fires after the timers registered at `to` before it). A move to a
   * later time changes the entry's timestamp and order (`seq`) and leaves it where it is: when its
   * bucket comes due, an entry whose timestamp is not its bucket's goes to the bucket of its
   * timestamp, in `seq` order (see {@link first}), so a timer that moves on every element (a
   * session's end) costs a lookup per move and one bucket insertion per time its old time comes.
   * A move to an earlier time, or to the same time (after the timers registered there since), or
   * of a timer a firing round put aside (see {@link pollDue}: the moved timer is a new
   * registration, due at `to` like any other), deletes and registers. Returns false if there is no
   * such timer (nothing changes). If a timer at `to` exists already, the moved one is deleted.
   */
  move(key: Key, mapKey: MapKey, keyGroup: number, namespace: N, from: number, to: number): boolean {
    const head = this.byKey.get(mapKey) ?? NONE;
    const e = this.find(head, namespace, from);
    if (e === NONE) return false;
    if (this.beforeChange !== undefined) this.changing();
    const ns = this.namespaces[e]!;
    if (to !== from && this.find(head, ns, to) !== NONE) {
      this.unlink(e);
      this.deleted(e);
      return true;
    }
    if (to <= from || (this.after.size !== 0 && this.after.has(e))) {
      this.unlink(e);
      this.deleted(e);
      this.add(key, mapKey, keyGroup, ns, to);
      return true;
    }
    // NOTE: a timer moves later in place only, so the bucket it is in is never later than its
    // timestamp.
    this.stamps[e] = to;
    this.seqs[e] = this.seq++;
    this.moved++;
    return true;
  }

  remove(mapKey: MapKey, namespace: N, timestamp: number): void {
    const e = this.find(this.byKey.get(mapKey) ?? NONE, namespace, timestamp);
    if (e === NONE) return;
    this.unlink(e);
    this.deleted(e);
  }

  /** Marks an unlinked timer deleted (its bucket skips it); its slot is free once nothing refers to it. */
  private deleted(e: number): void {
    if (this.beforeChange !== undefined) this.changing();
    this.seqs[e] = DELETED;
    if (this.after.size !== 0) this.after.delete(e);
    if (this.flags[e] !== REFERENCED) this.release(e);
  }

  private unlink(e: number): void {
    this.live--;
    const mapKey = this.mapKeyOf(e);
    const head = this.byKey.get(mapKey)!;
    const nexts = this.nexts;
    if (head === e) {
      if (nexts[e] === NONE) this.byKey.delete(mapKey);
      else this.byKey.set(mapKey, nexts[e]!);
      return;
    }
    let prev = head;
    while (nexts[prev] !== e) prev = nexts[prev]!;
    nexts[prev] = nexts[e]!;
  }

  /**
   * The slot of the earliest live timer, or -1; its bucket is left in {@link firstBucket} (its
   * `pos` at that timer; undefined when the timer is its timestamp's only one). Drops the buckets
   * that hold only deleted timers.
   */
  private first(): number {
    const times = this.times;
    const seqs = this.seqs;
    const stamps = this.stamps;
    while (times.length > 0) {
      const t = times[0]!;
      const b = this.buckets.get(t)!;
      if (typeof b === 'number') {
        // Deleted: skipped; moved later (see move): to its time's bucket.
        if (seqs[b] === DELETED) this.release(b);
        else if (stamps[b] !== t) this.requeue(b);
        else {
          this.firstBucket = undefined;
          return b;
        }
        this.buckets.delete(t);
        this.popTime();
        continue;
      }
      const entries = b.entries;
      // Deleted timers are skipped; timers that moved later (see move) go to their time's bucket.
      while (b.pos < entries.length) {
        const e = entries[b.pos]!;
        if (seqs[e] === DELETED) {
          b.pos++;
          this.release(e);
        } else if (stamps[e] !== t) {
          b.pos++;
          this.requeue(e);
        } else break;
      }
      if (b.pos < entries.length) {
        this.firstBucket = b;
        return entries[b.pos]!;
      }
      this.buckets.delete(t);
      this.popTime();
    }
    return NONE;
  }

  /** The earliest live timer's timestamp, or +Infinity. */
  peekTimestamp(): number {
    return this.first() === NONE ? Number.POSITIVE_INFINITY : this.times[0]!;
  }

  /**
   * Removes the earliest live timer if its timestamp is <= `time` and returns its slot (or -1).
   * The slot stays the caller's until it gives it back ({@link pollDue}'s round does).
   */
  pollUpTo(time: number): number {
    // NOTE: a timer registered while a bucket is polled joins its bucket (same timestamp, later
    // registration: after the others) or a new bucket, which comes first if it is earlier.
    if (this.times.length === 0 || this.times[0]! > time) return NONE;
    const top = this.first();
    if (top === NONE || this.times[0]! > time) return NONE;
    const b = this.firstBucket;
    if (b !== undefined) b.pos++;
    else {
      // Its timestamp's only timer: the timestamp goes (one registered at it later makes it anew).
      this.buckets.delete(this.times[0]!);
      this.popTime();
    }
    this.unlink(top);
    this.flags[top] = 0;
    return top;
  }

  // ---- firing rounds ----
  // NOTE: a timer fires at most once per advance of time. A firing may register a timer for a
  // time that has already passed; as in Flink it fires in the same advance (a window's cleanup,
  // a user's follow-up timer), unless it is one that already fired in this advance: a timer that
  // re-registers itself at a passed time (a trigger asking again for the window's end) would
  // otherwise fire forever without time moving. Such a timer waits for the next advance (a
  // higher watermark, a later processing time), and stays registered (and in snapshots) meanwhile.

  /** `seq` when the current round began (timers registered since were registered during it). */
  private roundSeq = Number.POSITIVE_INFINITY;
  /** The timers fired in the current round (their slots, given back when it ends), and by key once a check needs that. */
  private readonly fired: number[] = [];
  /**
   * The fired timers of the current round by key, once a check needs them: the most recent one's
   * slot, the others chained through `nexts` (which a fired timer, out of its key's chain, does
   * not use until its slot is given back at the round's end).
   */
  private firedByKey: KeyIndex<number> | undefined;
  /**
   * The index {@link firedByKey} uses, emptied when a round that used it ends and kept for the
   * next (a round that needs it adds every timer it fires: grown anew each round, it was rebuilt
   * at every doubling; measured on Nexmark q4).
   */
  private readonly firedIndex = new KeyIndex<number>();
  /**
   * The latest timestamp fired in the current round (-Infinity before the first): a timer
   * registered during the round at a later time repeats no fired one, without a look at
   * {@link firedByKey}.
   */
  private maxFired = Number.NEGATIVE_INFINITY;
  /** Timers put aside in the current round: live, but back in their buckets only at its end. */
  private readonly aside: number[] = [];
  /**
   * Timers put aside by a round, with the time they fire only after (see {@link pollDue}); kept
   * here rather than in a column, as few timers are ever put aside.
   */
  private readonly after = new Map<number, number>();
  /** The time of the last round that put a timer aside (they are due after it), or -Infinity. */
  deferredUntil = Number.NEGATIVE_INFINITY;

  /** Starts firing the timers due at `time` (then {@link pollDue} until -1, then {@link endRound}). */
  beginRound(): void {
    this.roundSeq = this.seq;
    this.maxFired = Number.NEGATIVE_INFINITY;
  }

  /**
   * The slot of the next timer to fire in this round, or -1; timers that must wait are put aside.
   * The slot's fields can be read until the round ends.
   */
  pollDue(time: number): number {
    for (;;) {
      const t = this.pollUpTo(time);
      if (t === NONE) return NONE;
      const after =
        this.after.size === 0 ? Number.NEGATIVE_INFINITY : (this.after.get(t) ?? Number.NEGATIVE_INFINITY);
      if (
        after >= time ||
        (this.seqs[t]! >= this.roundSeq && this.stamps[t]! <= this.maxFired && this.firedInRound(t))
      ) {
        if (after < time) this.after.set(t, time);
        // Live and findable (a delete or an equal registration sees it), not yet due.
        const mapKey = this.mapKeyOf(t);
        this.nexts[t] = this.byKey.get(mapKey) ?? NONE;
        this.byKey.set(mapKey, t);
        this.live++;
        this.flags[t] = REFERENCED;
        this.aside.push(t);
        continue;
      }
      if (after !== Number.NEGATIVE_INFINITY) this.after.delete(t);
      this.fired.push(t);
      if (this.stamps[t]! > this.maxFired) this.maxFired = this.stamps[t]!;
      if (this.firedByKey !== undefined) this.addFired(this.firedByKey, t);
      return t;
    }
  }

  /** Ends the round: timers put aside are queued again, due after `time`; fired timers' slots are given back. */
  endRound(time: number): void {
    this.roundSeq = Number.POSITIVE_INFINITY;
    const fired = this.fired;
    for (let i = 0; i < fired.length; i++) this.release(fired[i]!);
    if (this.firedByKey !== undefined) {
      this.firedByKey.reset(fired.length);
      this.firedByKey = undefined;
    }
    fired.length = 0;
    if (this.aside.length === 0) return;
    for (const e of this.aside) {
      if (this.seqs[e] !== DELETED) this.enqueue(e);
      else this.release(e);
    }
    this.aside.length = 0;
    this.deferredUntil = time;
  }

  /** True if a timer equal to `t` (key, namespace, timestamp) fired earlier in this round. */
  private firedInRound(t: number): boolean {
    let byKey = this.firedByKey;
    if (byKey === undefined) {
      byKey = this.firedByKey = this.firedIndex;
      for (const f of this.fired) this.addFired(byKey, f);
    }
    const ts = this.stamps[t]!;
    const ns = this.namespaces[t];
    let k: string | number | undefined;
    for (let f = byKey.get(this.mapKeyOf(t)) ?? NONE; f !== NONE; f = this.nexts[f]!) {
      if (this.stamps[f] !== ts) continue;
      if (this.namespaces[f] === ns) return true;
      k ??= this.nsKeyAt(t);
      if (this.nsKeyAt(f) === k) return true;
    }
    return false;
  }

  private addFired(byKey: KeyIndex<number>, f: number): void {
    const mapKey = this.mapKeyOf(f);
    this.nexts[f] = byKey.get(mapKey) ?? NONE;
    byKey.set(mapKey, f);
  }

  /**
   * Calls `f` on every live timer's slot, by timestamp and in registration order within a
   * timestamp (timers moved in place and not yet in their time's bucket included, where they
   * belong).
   */
  forEach(f: (slot: number) => void): void {
    const times = (this.buckets.keyList() as number[]).sort((a, b) => a - b);
    const seqs = this.seqs;
    const stamps = this.stamps;
    if (this.moved > 0) {
      const all: number[] = [];
      let out = false;
      for (const t of times) {
        const b = this.buckets.get(t)!;
        const entries = typeof b === 'number' ? [b] : b.entries;
        for (let i = typeof b === 'number' ? 0 : b.pos; i < entries.length; i++) {
          const e = entries[i]!;
          if (seqs[e] === DELETED) continue;
          if (stamps[e] !== t) out = true;
          all.push(e);
        }
      }
      if (out) all.sort((a, b) => stamps[a]! - stamps[b]! || seqs[a]! - seqs[b]!);
      else this.moved = 0;
      for (const e of all) f(e);
      return;
    }
    for (const t of times) {
      const b = this.buckets.get(t)!;
      if (typeof b === 'number') {
        if (seqs[b] !== DELETED) f(b);
        continue;
      }
      const entries = b.entries;
      for (let i = b.pos; i < entries.length; i++) {
        const e = entries[i]!;
        if (seqs[e] !== DELETED) f(e);
      }
    }
  }

  clear(): void {
    if (this.beforeChange !== undefined) this.changing();
    this.moved = 0;
    this.after.clear();
    this.times.length = 0;
    this.buckets.clear();
    this.byKey.clear();
    this.live = 0;
    this.fired.length = 0;
    this.firedByKey = undefined;
    this.firedIndex.clear();
    this.aside.length = 0;
    this.capacity = this.used = 0;
    this.free = NONE;
    this.keys = [];
    this.namespaces = [];
    this.nsKeys = undefined;
    this.stamps = new Float64Array(0);
    this.seqs = new Float64Array(0);
    this.groups = new Int32Array(0);
    this.nexts = new Int32Array(0);
    this.flags = new Uint8Array(0);
  }

  private up(t: number): void {
    const h = this.times;
    let i = h.length;
    h.push(t);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= t) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = t;
  }

  private popTime(): void {
    const h = this.times;
    const last = h.pop()!;
    const n = h.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]! < h[l]! ? r : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

/** A timer as its target gets it when it fires (its own object: the target may keep it). */
class FiredTimer<N> implements Timer<Key, N> {
  constructor(
    readonly key: Key,
    readonly namespace: N,
    readonly timestamp: number,
  ) {}
}

/** Work between event-loop turns while a checkpoint's timers are walked (ms). */
const WALK_SLICE_MS = 10;

/**
 * The timers a checkpoint collects for the key groups it writes whole (see
 * `TimerServiceImpl.snapshotForCheckpoint`): `get(g)` gives key group `g`'s (walking what is left
 * first); `pending` resolves once the walk is done (undefined once it is).
 */
export interface CollectedTimers {
  get(keyGroup: number): TimerColumns | undefined;
  readonly pending: Promise<void> | undefined;
}

/** A key group without timers, as a checkpoint collected it. */
const NO_TIMERS: TimerColumns = new TimerColumnsBuilder().build();

/** Hooks the timer service needs from its task. */
export interface TimerHost {
  now(): number;
  currentWatermark(): number;
  /** A processing-time timer at `time` was registered: have the task woken then. */
  wakeAt(time: number): void;
}

/** Timers of one operator under one name. */
export class TimerServiceImpl<N> implements InternalTimerService<N> {
  readonly eventTimers: TimerHeap<N>;
  readonly processingTimers: TimerHeap<N>;
  /**
   * Per key group of the backend's range: the group's timers as a checkpoint last collected them
   * (see {@link snapshotForCheckpoint}), and whether they changed since (1 from the start: a
   * group is 0 only once its collection is stored).
   */
  private readonly collected: (TimerColumns | undefined)[];
  private readonly changedSince: Uint8Array;

  constructor(
    readonly name: string,
    private readonly backend: KeyedStateBackend,
    readonly target: Triggerable<Key, N>,
    nsKey: NamespaceKeyFn<N>,
    private readonly host: TimerHost,
  ) {
    this.eventTimers = new TimerHeap(nsKey);
    this.processingTimers = new TimerHeap(nsKey);
    const size = backend.keyGroupRange.size;
    this.collected = new Array(size).fill(undefined);
    this.changedSince = new Uint8Array(size).fill(1);
  }

  currentProcessingTime(): number {
    return this.host.now();
  }
  currentWatermark(): number {
    return this.host.currentWatermark();
  }
  /** Marks the current key changed (for incremental checkpoints), and its group's timers. */
  private touch(): void {
    this.backend.touch();
    this.changedSince[this.backend.groupIndex] = 1;
  }
  registerEventTimeTimer(namespace: N, timestamp: number): void {
    this.register(this.eventTimers, namespace, timestamp);
  }
  deleteEventTimeTimer(namespace: N, timestamp: number): void {
    this.delete(this.eventTimers, namespace, timestamp);
  }
  registerProcessingTimeTimer(namespace: N, timestamp: number): void {
    if (this.register(this.processingTimers, namespace, timestamp)) this.host.wakeAt(timestamp);
  }
  deleteProcessingTimeTimer(namespace: N, timestamp: number): void {
    this.delete(this.processingTimers, namespace, timestamp);
  }
  moveEventTimeTimer(namespace: N, from: number, to: number): boolean {
    return this.move(this.eventTimers, namespace, from, to);
  }
  moveProcessingTimeTimer(namespace: N, from: number, to: number): boolean {
    if (!this.move(this.processingTimers, namespace, from, to)) return false;
    if (to < from) this.host.wakeAt(to);
    return true;
  }
  /** Moves a timer of the current key (see `TimerHeap.move`); false if there is none. */
  private move(timers: TimerHeap<N>, namespace: N, from: number, to: number): boolean {
    const b = this.backend;
    const moved = timers.move(b.getCurrentKey(), b.mapKey, b.currentKeyGroup, namespace, from, to);
    if (moved) this.touch();
    return moved;
  }
  /** Adds a timer of the current key; true if it was not there yet. */
  private register(timers: TimerHeap<N>, namespace: N, timestamp: number): boolean {
    const b = this.backend;
    const added = timers.add(b.getCurrentKey(), b.mapKey, b.currentKeyGroup, namespace, timestamp);
    if (added) this.touch();
    return added;
  }
  private delete(timers: TimerHeap<N>, namespace: N, timestamp: number): void {
    const b = this.backend;
    b.getCurrentKey();
    timers.remove(b.mapKey, namespace, timestamp);
    this.touch();
  }
  numEventTimeTimers(): number {
    this.backend.installAllPending();
    return this.eventTimers.size;
  }
  numProcessingTimeTimers(): number {
    this.backend.installAllPending();
    return this.processingTimers.size;
  }

  /** Fires every event-time timer with timestamp <= watermark. */
  advanceWatermark(watermark: number): void {
    this.fireUpTo(this.eventTimers, watermark, true);
  }

  /** Fires every processing-time timer with timestamp <= now. */
  advanceProcessingTime(now: number): void {
    this.fireUpTo(this.processingTimers, now, false);
  }

  private fireUpTo(timers: TimerHeap<N>, time: number, eventTime: boolean): void {
    timers.beginRound();
    try {
      for (;;) {
        const s = timers.pollDue(time);
        if (s === -1) return;
        const key = timers.keyOf(s);
        this.backend.setCurrentKeyInGroup(key, timers.keyGroupOf(s), timers.mapKeyOf(s));
        this.touch();
        const t = new FiredTimer<N>(key, timers.namespaceOf(s), timers.timestampOf(s));
        if (eventTime) this.target.onEventTime(t);
        else this.target.onProcessingTime(t);
      }
    } finally {
      timers.endRound(time);
    }
  }

  /**
   * Earliest processing-time timer, or +Infinity. A timer that must wait for time to advance
   * (see `TimerHeap.pollDue`) is due a millisecond after the round that put it aside.
   */
  nextProcessingTime(): number {
    const t = this.processingTimers.peekTimestamp();
    const d = this.processingTimers.deferredUntil;
    return t <= d ? d + 1 : t;
  }

  /**
   * Timers grouped by key group, as flat arrays `[key, namespace, timestamp, ...]` (cheap to
   * encode), in registration order within each group. With `only`, just the key groups it marks
   * (by index in the backend's range).
   */
  snapshotByKeyGroup(only?: Uint8Array): Map<number, TimersSnapshot> {
    const backend = this.backend;
    if (only === undefined) backend.installAllPending();
    else if (backend.pendingGroups !== 0)
      for (let i = 0; i < only.length; i++) if (only[i] === 1) backend.installPending(i);
    const start = this.backend.keyGroupRange.start;
    // NOTE: one walk over the buckets' arrays into per-group arrays (no generator, no map lookup
    // per timer): a checkpoint of whole key groups walks every timer.
    const byIndex: (TimersSnapshot | undefined)[] = new Array(this.backend.keyGroupRange.size);
    // Groups in the order their first timer comes (timestamp, then registration).
    const order: number[] = [];
    const add = (h: TimerHeap<N>, kind: 'event' | 'processing') =>
      h.forEach((e) => {
        const i = h.keyGroupOf(e) - start;
        if (only !== undefined && only[i] !== 1) return;
        let g = byIndex[i];
        if (g === undefined) {
          byIndex[i] = g = { event: [], processing: [] };
          order.push(i);
        }
        g[kind].push(h.keyOf(e), h.namespaceOf(e), h.timestampOf(e));
      });
    add(this.eventTimers, 'event');
    add(this.processingTimers, 'processing');
    const out = new Map<number, TimersSnapshot>();
    for (const i of order) out.set(start + i, byIndex[i]!);
    return out;
  }

  /**
   * For a checkpoint that writes the key groups `whole` marks whole: their timers, in the columns
   * the checkpoint writes (the timers {@link snapshotByKeyGroup} gives, in its order). A group
   * whose timers did not change since a checkpoint last collected them gets that collection again
   * (the same columns, which nobody mutates), so a checkpoint walks the timers only if some
   * group's changed: in a window job, most intervals change state but open or close no window.
   *
   * The walk itself happens later, copy-on-write (see `TimerHeap.walkLater`): in slices of about
   * 10 ms of later event-loop turns, or at once before a timer is deleted, moved or fired, or when
   * {@link CollectedTimers.get} asks for a group's timers first.
   */
  snapshotForCheckpoint(whole: Uint8Array): CollectedTimers {
    // A walk of an earlier checkpoint is finished first: its columns are that of unchanged groups.
    this.collecting?.finish();
    const start = this.backend.keyGroupRange.start;
    let stale: Uint8Array | undefined;
    for (let i = 0; i < whole.length; i++)
      if (whole[i] === 1 && this.changedSince[i] === 1) (stale ??= new Uint8Array(whole.length))[i] = 1;
    const out = new Map<number, TimerColumns>();
    const collected = this.collected;
    const gather = () => {
      for (let i = 0; i < whole.length; i++) {
        if (whole[i] !== 1) continue;
        const t = collected[i]!;
        if (t !== NO_TIMERS) out.set(start + i, t);
      }
    };
    if (stale === undefined) {
      gather();
      return { get: (g) => out.get(g), pending: undefined };
    }
    const backend = this.backend;
    if (backend.pendingGroups !== 0)
      for (let i = 0; i < stale.length; i++) if (stale[i] === 1) backend.installPending(i);
    // NOTE: changes from now on mark their groups changed again; the columns are those of now.
    for (let i = 0; i < stale.length; i++) if (stale[i] === 1) this.changedSince[i] = 0;
    const only = stale;
    const byIndex: (TimerColumnsBuilder | undefined)[] = new Array(only.length);
    const visitor = (h: TimerHeap<N>, processing: boolean) => (e: number) => {
      const i = h.keyGroupOf(e) - start;
      if (only[i] !== 1) return;
      let b = byIndex[i];
      if (b === undefined) byIndex[i] = b = new TimerColumnsBuilder();
      b.add(processing, h.keyOf(e), h.namespaceOf(e), h.timestampOf(e));
    };
    const visitEvent = visitor(this.eventTimers, false);
    const visitProcessing = visitor(this.processingTimers, true);
    const build = () => {
      for (let i = 0; i < only.length; i++)
        if (only[i] === 1) collected[i] = byIndex[i]?.build() ?? NO_TIMERS;
      gather();
    };
    let events: TimerWalk | undefined;
    let processing: TimerWalk | undefined;
    let finished = false;
    let abandoned = false;
    const closed = () =>
      new StateError(`${backend.owner}: the timers were closed during a checkpoint's snapshot`);
    // Every event-time timer before the processing-time ones (the order of the columns).
    const finish = () => {
      if (abandoned) throw closed();
      if (finished) return;
      finished = true;
      this.eventTimers.walked();
      this.processingTimers.walked();
      if (this.collecting === collecting) this.collecting = undefined;
      events!.finish(visitEvent);
      processing!.finish(visitProcessing);
      build();
    };
    const abandon = () => {
      if (finished) return;
      finished = abandoned = true;
      this.eventTimers.walked();
      this.processingTimers.walked();
      if (this.collecting === collecting) this.collecting = undefined;
    };
    const collecting = { finish, abandon };
    events = this.eventTimers.walkLater(finish);
    processing = events === undefined ? undefined : this.processingTimers.walkLater(finish);
    if (events === undefined || processing === undefined) {
      this.eventTimers.walked();
      this.eventTimers.forEach(visitEvent);
      this.processingTimers.forEach(visitProcessing);
      build();
      return { get: (g) => out.get(g), pending: undefined };
    }
    this.collecting = collecting;
    const walkInSlices = async (): Promise<void> => {
      while (!finished) {
        await nextTurn();
        if (abandoned) throw closed();
        if (finished) return;
        const deadline = performance.now() + WALK_SLICE_MS;
        if (events!.step(visitEvent, deadline) && processing!.step(visitProcessing, deadline)) finish();
      }
    };
    const pending = walkInSlices();
    pending.catch(() => {}); // see OperatorRuntime.snapshotIncremental
    return {
      get: (g) => {
        finish();
        return out.get(g);
      },
      // NOTE: undefined once walked (a group's encoding asked for it): nothing left to wait for.
      get pending() {
        return finished && !abandoned ? undefined : pending;
      },
    };
  }

  /** The walk of the timers a checkpoint collects, while it is under way (see snapshotForCheckpoint). */
  private collecting: { finish(): void; abandon(): void } | undefined;

  /**
   * The operator closed: a walk under way is abandoned (its checkpoint cannot complete without
   * the task; a finished job's last checkpoint completed before its operators close).
   */
  dispose(): void {
    this.collecting?.abandon();
  }

  /**
   * The timers of some keys (canonical forms), flat as {@link snapshotByKeyGroup} gives them, in
   * registration order per key.
   */
  snapshotKeys(keys: readonly MapKey[]): TimersSnapshot {
    const pick = (h: TimerHeap<N>) => {
      const flat: unknown[] = [];
      for (const k of keys) {
        const head = h.head(k);
        if (head === -1) continue;
        if (h.nextOf(head) === -1) flat.push(h.keyOf(head), h.namespaceOf(head), h.timestampOf(head));
        else {
          const chain: number[] = [];
          for (let e = head; e !== -1; e = h.nextOf(e)) chain.push(e);
          chain.sort((a, b) => h.seqOf(a) - h.seqOf(b));
          for (const e of chain) flat.push(h.keyOf(e), h.namespaceOf(e), h.timestampOf(e));
        }
      }
      return flat;
    };
    return { event: pick(this.eventTimers), processing: pick(this.processingTimers) };
  }

  /** Re-registers restored timers of one key group (flat, as {@link snapshotByKeyGroup} gives). */
  restore(keyGroup: number, timers: TimersSnapshot): void {
    this.changedSince[keyGroup - this.backend.keyGroupRange.start] = 1;
    const { event, processing } = timers;
    this.eventTimers.addAll(event, keyGroup);
    if (processing.length === 0) return;
    this.processingTimers.addAll(processing, keyGroup);
    let earliest = Number.POSITIVE_INFINITY;
    for (let i = 2; i < processing.length; i += 3) earliest = Math.min(earliest, processing[i] as number);
    this.host.wakeAt(earliest);
  }
}
