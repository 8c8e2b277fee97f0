/**
 * Key groups: the unit in which keyed state is partitioned, stored and redistributed.
 *
 * As in Flink: a key falls into key group `hash(key) mod maxParallelism`; key group `g` belongs to
 * subtask `floor(g * parallelism / maxParallelism)`, so each subtask owns one contiguous range.
 */
import { InvalidArgumentError } from './errors.js';
import { hashKey, type Key } from './hash.js';

/** The smallest and largest allowed `maxParallelism`. */
export const MIN_MAX_PARALLELISM = 1;
export const UPPER_BOUND_MAX_PARALLELISM = 32768;
/** `maxParallelism` when none is set and the parallelism is at most 128. */
export const DEFAULT_MAX_PARALLELISM = 128;

/** The key group of a key. */
export function keyGroupFor(key: Key, maxParallelism: number): number {
  return unsignedMod(hashKey(key), maxParallelism);
}

/**
 * `(h >>> 0) % m` of an int32 `h` and an integer `m` in [1, 2^30), in int32 arithmetic: the
 * unsigned value is `2 * (h >>> 1) + (h & 1)`, so its remainder is that of
 * `2 * ((h >>> 1) % m) + (h & 1)`. NOTE: half of all hashes are above 2^31 as unsigned numbers,
 * and V8 takes the remainder of such a number as a double (about 9 ns against 2 for this; every
 * keyed record computes its key group).
 */
export function unsignedMod(h: number, m: number): number {
  return ((((h >>> 1) % m) << 1) + (h & 1)) % m;
}

/** The subtask that owns a key group. */
export function subtaskForKeyGroup(keyGroup: number, parallelism: number, maxParallelism: number): number {
  return Math.floor((keyGroup * parallelism) / maxParallelism);
}

/** The subtask that owns a key. */
export function subtaskForKey(key: Key, parallelism: number, maxParallelism: number): number {
  return subtaskForKeyGroup(keyGroupFor(key, maxParallelism), parallelism, maxParallelism);
}

/** An inclusive range of key groups `[start, end]`; empty when `end < start`. */
export class KeyGroupRange {
  constructor(
    readonly start: number,
    readonly end: number,
  ) {}

  /** Number of key groups in the range. */
  get size(): number {
    return Math.max(0, this.end - this.start + 1);
  }

  contains(keyGroup: number): boolean {
    return keyGroup >= this.start && keyGroup <= this.end;
  }

  toString(): string {
    return this.size === 0 ? '[]' : `[${this.start}..${this.end}]`;
  }

  /** The key groups owned by one subtask (the inverse of {@link subtaskForKeyGroup}). */
  static forSubtask(subtaskIndex: number, parallelism: number, maxParallelism: number): KeyGroupRange {
    checkParallelism(parallelism, maxParallelism);
    const start = Math.ceil((subtaskIndex * maxParallelism) / parallelism);
    const end = Math.ceil(((subtaskIndex + 1) * maxParallelism) / parallelism) - 1;
    return new KeyGroupRange(start, end);
  }

  /** All key groups `[0, maxParallelism)`. */
  static all(maxParallelism: number): KeyGroupRange {
    return new KeyGroupRange(0, maxParallelism - 1);
  }
}

/** Flink's default: 128 unless the parallelism needs more (1.5 × parallelism rounded up to a power of 2). */
export function defaultMaxParallelism(parallelism: number): number {
  let p = 1;
  const want = parallelism + Math.floor(parallelism / 2);
  while (p < want) p *= 2;
  return Math.min(Math.max(p, DEFAULT_MAX_PARALLELISM), UPPER_BOUND_MAX_PARALLELISM);
}

/** Throws a RangeError unless `1 <= parallelism <= maxParallelism <= 32768`. */
export function checkParallelism(parallelism: number, maxParallelism: number): void {
  if (
    !Number.isInteger(maxParallelism) ||
    maxParallelism < MIN_MAX_PARALLELISM ||
    maxParallelism > UPPER_BOUND_MAX_PARALLELISM
  )
    throw new InvalidArgumentError(
      `maxParallelism must be an integer in [1, ${UPPER_BOUND_MAX_PARALLELISM}], got ${maxParallelism}`,
    );
  if (!Number.isInteger(parallelism) || parallelism < 1)
    throw new InvalidArgumentError(`parallelism must be a positive integer, got ${parallelism}`);
  if (parallelism > maxParallelism)
    throw new InvalidArgumentError(
      `parallelism ${parallelism} is greater than maxParallelism ${maxParallelism}`,
    );
}
