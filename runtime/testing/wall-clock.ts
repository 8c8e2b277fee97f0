/**
 * The wall clock of simulated jobs: while a simulation runs, `Date.now()` and `performance.now()`
 * follow its manual clock, so user code that reads the time sees processing time as the seed moves
 * it (and a job that buckets by `Date.now()` is caught by checks that vary the clock).
 *
 * NOTE: the globals are replaced for the duration of the simulated run (the process has one
 * thread: while the run is awaited, only it and the test runner run) and restored after; the
 * replacements answer with the real clock when no simulation is active, so a function captured
 * during a run (`const now = Date.now`) stays correct afterwards. Several simulations at once
 * (`Promise.all`) share the globals: each step sets its own clock as the current one. `new Date()`
 * without arguments is not covered (replacing the `Date` constructor would change what
 * `instanceof Date` and `value.constructor === Date` see elsewhere).
 */
import type { ManualClock } from '../clock.js';

/** A simulation's clock, and the time `performance.now()` counts from. */
interface Active {
  readonly clock: ManualClock;
  readonly origin: number;
}

/** What the globals were before the first active simulation replaced them. */
let realDateNow: () => number = Date.now;
let realPerformanceNow: () => number = performance.now.bind(performance);
/** `performance`'s own `now` before it was replaced, if it had one (it is usually inherited). */
let ownPerformanceNow: PropertyDescriptor | undefined;

const active: Active[] = [];
let current: Active | undefined;

function simulatedDateNow(): number {
  return current === undefined ? realDateNow() : current.clock.now();
}

function simulatedPerformanceNow(): number {
  return current === undefined ? realPerformanceNow() : current.clock.now() - current.origin;
}

/**
 * Makes `Date.now()` and `performance.now()` follow `clock` (performance time counted from its
 * time now) until the returned function is called.
 */
export function simulateWallClock(clock: ManualClock): () => void {
  const entry: Active = { clock, origin: clock.now() };
  if (active.length === 0) {
    realDateNow = Date.now;
    realPerformanceNow = performance.now.bind(performance);
    ownPerformanceNow = Object.getOwnPropertyDescriptor(performance, 'now');
    Date.now = simulatedDateNow;
    Object.defineProperty(performance, 'now', {
      value: simulatedPerformanceNow,
      configurable: true,
      writable: true,
      enumerable: true,
    });
  }
  active.push(entry);
  current = entry;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    active.splice(active.indexOf(entry), 1);
    current = active[active.length - 1];
    if (active.length > 0) return;
    Date.now = realDateNow;
    // The own property shadows Performance.prototype.now; without it, the original answers.
    if (ownPerformanceNow === undefined) delete (performance as { now?: unknown }).now;
    else Object.defineProperty(performance, 'now', ownPerformanceNow);
  };
}

/** Makes `clock`'s simulation the current one (before each of its steps). */
export function enterWallClock(clock: ManualClock): void {
  if (current?.clock === clock) return;
  const entry = active.find((a) => a.clock === clock);
  if (entry !== undefined) current = entry;
}
