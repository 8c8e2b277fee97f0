/** Processing-time clocks: the wall clock, and a manual clock for tests and simulation. */
import type { Clock } from '../operators/contract.js';
import { InvalidArgumentError } from '../state/errors.js';

/** The wall clock (`Date.now()`). */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }
}

/** A clock that only moves when told to; listeners hear every move. */
export class ManualClock implements Clock {
  private time: number;
  private readonly listeners = new Set<(now: number) => void>();
  constructor(startMs = 0) {
    this.time = startMs;
  }
  now(): number {
    return this.time;
  }
  /** Moves the clock forward by `ms` (>= 0). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new InvalidArgumentError(`a clock cannot go back (advance by ${ms} ms)`);
    this.set(this.time + ms);
  }
  /** Moves the clock to `timeMs` (not backwards). */
  set(timeMs: number): void {
    if (timeMs < this.time)
      throw new InvalidArgumentError(`a clock cannot go back from ${this.time} to ${timeMs}`);
    this.time = timeMs;
    for (const l of this.listeners) l(timeMs);
  }
  /** @internal */
  onAdvance(listener: (now: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** True if the clock is a {@link ManualClock}. */
export function isManualClock(c: Clock): c is ManualClock {
  return c instanceof ManualClock;
}
