/**
 * A hash index for the timer service's lookups by key and by timestamp: `get`, `set`, `delete`,
 * as a `Map` has them, for tables whose entries come and go all the time.
 *
 * NOTE: measured, a `Map` of 60 000 live integer keys, each added, looked up and deleted once
 * (a timer per key and window, or per auction), costs about 105 ns an operation, 4–5 times what
 * the same lookups cost without the churn, as its deleted entries fill its table and it is
 * rebuilt; timestamps (doubles, not small integers) cost more. Numbers here go to an open-
 * addressing table of typed arrays (linear probing, deleted slots reused, rebuilt at half full):
 * about 45 ns an operation on the same churn. Other keys (strings, bigints, booleans, NaN) go to
 * a `Map`. No order is kept: callers that walk the keys sort them.
 *
 * The price is memory: a quarter to a half of the slots are in use, so a number key takes 18–36
 * bytes of typed arrays and 16–32 of the values' array (a `Map` about 30 in all): with a timer for
 * each of 1 M keys, 42 bytes a key more (the checkpoint benchmark's memory per key, 148 → 190).
 */

const EMPTY = 0;
const FULL = 1;
const DELETED = 2;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

export class KeyIndex<V> {
  private cap = 0;
  private mask = 0;
  private keys = new Float64Array(0);
  private vals: (V | undefined)[] = [];
  private states = new Uint8Array(0);
  /** Slots not EMPTY (full or deleted): the table is rebuilt when they pass half of it. */
  private occupied = 0;
  /** Numbers in the table. */
  private count = 0;
  /** Keys that are not numbers (or NaN). */
  private other: Map<unknown, V> | undefined = undefined;

  constructor() {
    this.init(16);
  }

  private init(cap: number): void {
    this.cap = cap;
    this.mask = cap - 1;
    this.keys = new Float64Array(cap);
    this.vals = new Array(cap).fill(undefined);
    this.states = new Uint8Array(cap);
    this.occupied = 0;
    this.count = 0;
  }

  get size(): number {
    return this.count + (this.other === undefined ? 0 : this.other.size);
  }

  /** The slot to start probing at for number `k` (0 and -0 alike, as a Map). */
  private home(k: number): number {
    let h: number;
    if ((k | 0) === k) h = k | 0;
    else {
      f64[0] = k;
      h = u32[0]! ^ u32[1]!;
    }
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  /** The slot of number `k`, or -1. */
  private find(k: number): number {
    const states = this.states;
    const keys = this.keys;
    const mask = this.mask;
    for (let i = this.home(k); ; i = (i + 1) & mask) {
      const s = states[i]!;
      if (s === EMPTY) return -1;
      if (s === FULL && keys[i] === k) return i;
    }
  }

  get(k: unknown): V | undefined {
    if (typeof k !== 'number' || Number.isNaN(k)) return this.other?.get(k);
    const i = this.find(k);
    return i < 0 ? undefined : this.vals[i];
  }

  has(k: unknown): boolean {
    if (typeof k !== 'number' || Number.isNaN(k)) return this.other?.has(k) ?? false;
    return this.find(k) >= 0;
  }

  set(k: unknown, v: V): this {
    if (typeof k !== 'number' || Number.isNaN(k)) {
      if (this.other === undefined) this.other = new Map();
      this.other.set(k, v);
      return this;
    }
    const states = this.states;
    const keys = this.keys;
    const mask = this.mask;
    let reuse = -1;
    let i = this.home(k);
    for (; ; i = (i + 1) & mask) {
      const s = states[i]!;
      if (s === EMPTY) break;
      if (s === FULL) {
        if (keys[i] === k) {
          this.vals[i] = v;
          return this;
        }
      } else if (reuse < 0) reuse = i;
    }
    if (reuse >= 0) i = reuse;
    else this.occupied++;
    states[i] = FULL;
    // NOTE: -0 is kept as 0, as a Map keeps it.
    keys[i] = k === 0 ? 0 : k;
    this.vals[i] = v;
    this.count++;
    if (2 * this.occupied > this.cap) this.rebuild();
    return this;
  }

  delete(k: unknown): boolean {
    if (typeof k !== 'number' || Number.isNaN(k)) return this.other?.delete(k) ?? false;
    const i = this.find(k);
    if (i < 0) return false;
    this.states[i] = DELETED;
    this.vals[i] = undefined;
    this.count--;
    return true;
  }

  clear(): void {
    this.init(16);
    this.other = undefined;
  }

  /**
   * Empties the index for about `expected` keys to come: in its own arrays when they are not much
   * larger than that needs (no allocation), else in new small ones.
   */
  reset(expected: number): void {
    this.other = undefined;
    if (this.cap > 64 && this.cap > 16 * expected) {
      this.init(16);
      return;
    }
    this.states.fill(EMPTY);
    this.vals.fill(undefined);
    this.occupied = 0;
    this.count = 0;
  }

  /** The keys, in no particular order. */
  keyList(): unknown[] {
    const out: unknown[] = [];
    const states = this.states;
    for (let i = 0; i < this.cap; i++) if (states[i] === FULL) out.push(this.keys[i]);
    if (this.other !== undefined) for (const k of this.other.keys()) out.push(k);
    return out;
  }

  /** Into a table of at least four times the numbers (so at most a quarter full), without deleted slots. */
  private rebuild(): void {
    const { keys, vals, states, cap } = this;
    let n = 16;
    while (n < 4 * this.count) n *= 2;
    if (n === cap) {
      this.rebuildInPlace();
      return;
    }
    this.init(n);
    for (let i = 0; i < cap; i++) if (states[i] === FULL) this.set(keys[i]!, vals[i] as V);
  }

  /**
   * The same table rid of its deleted slots, in the arrays it has. NOTE: with steady churn (as
   * many keys come as go: timers' timestamps, q4's auctions) the table fills with deleted slots at
   * the same size, and a new table each time cost three allocations of its size (a `vals` array
   * of 64 k entries is a large object) several times a second; the live entries are a quarter at
   * most, copied out and back.
   */
  private rebuildInPlace(): void {
    const { keys, vals, states, cap } = this;
    const liveKeys: number[] = [];
    const liveVals: (V | undefined)[] = [];
    for (let i = 0; i < cap; i++)
      if (states[i] === FULL) {
        liveKeys.push(keys[i]!);
        liveVals.push(vals[i]);
      }
    states.fill(EMPTY);
    vals.fill(undefined);
    this.occupied = 0;
    this.count = 0;
    for (let i = 0; i < liveKeys.length; i++) this.set(liveKeys[i]!, liveVals[i] as V);
  }
}
