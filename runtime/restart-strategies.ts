/**
 * Restart strategies (Flink's): what happens when a task fails. The job restarts from its latest
 * completed checkpoint (or from the beginning if it has none) after a delay, or fails.
 */
import { InvalidArgumentError } from '../state/errors.js';

/** A restart strategy. */
export type RestartStrategy =
  | { readonly type: 'none' }
  | { readonly type: 'fixed-delay'; readonly attempts: number; readonly delayMs: number }
  | {
      readonly type: 'exponential-delay';
      readonly initialDelayMs: number;
      readonly maxDelayMs: number;
      readonly multiplier: number;
      /** A run this long without failure resets the delay. */
      readonly resetAfterMs: number;
      /** Random spread of each delay, as a fraction (0..1). */
      readonly jitter: number;
      readonly attempts: number;
    }
  | {
      readonly type: 'failure-rate';
      readonly maxFailures: number;
      readonly intervalMs: number;
      readonly delayMs: number;
    };

/** Builders of {@link RestartStrategy} values. */
export const RestartStrategies = {
  /** Never restart: a failure fails the job. */
  none(): RestartStrategy {
    return { type: 'none' };
  },
  /** Restart up to `attempts` times, waiting `delayMs` each time. */
  fixedDelay(attempts: number, delayMs: number): RestartStrategy {
    check(attempts >= 0, `attempts must be >= 0, got ${attempts}`);
    check(delayMs >= 0, `delayMs must be >= 0, got ${delayMs}`);
    return { type: 'fixed-delay', attempts, delayMs };
  },
  /** Restart with a delay that grows by `multiplier` up to `maxDelayMs` (Flink's default). */
  exponentialDelay(
    options: {
      initialDelayMs?: number;
      maxDelayMs?: number;
      multiplier?: number;
      resetAfterMs?: number;
      jitter?: number;
      attempts?: number;
    } = {},
  ): RestartStrategy {
    const s = {
      type: 'exponential-delay' as const,
      initialDelayMs: options.initialDelayMs ?? 1000,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      multiplier: options.multiplier ?? 1.5,
      resetAfterMs: options.resetAfterMs ?? 3_600_000,
      jitter: options.jitter ?? 0.1,
      attempts: options.attempts ?? Number.POSITIVE_INFINITY,
    };
    check(
      s.initialDelayMs >= 0 && s.maxDelayMs >= s.initialDelayMs,
      'exponential delay: need 0 <= initialDelayMs <= maxDelayMs',
    );
    check(s.multiplier >= 1, `exponential delay: multiplier must be >= 1, got ${s.multiplier}`);
    check(s.jitter >= 0 && s.jitter <= 1, `exponential delay: jitter must be in [0, 1], got ${s.jitter}`);
    return s;
  },
  /** Restart unless more than `maxFailures` failures happened within `intervalMs`. */
  failureRate(maxFailures: number, intervalMs: number, delayMs: number): RestartStrategy {
    check(
      maxFailures >= 1 && intervalMs > 0 && delayMs >= 0,
      'failure rate: need maxFailures >= 1, intervalMs > 0, delayMs >= 0',
    );
    return { type: 'failure-rate', maxFailures, intervalMs, delayMs };
  },
};

function check(ok: boolean, message: string): void {
  if (!ok) throw new InvalidArgumentError(message);
}

/** Decides restarts of one job under a strategy. */
export class RestartBackoff {
  private readonly failures: number[] = [];
  private delay: number;
  private lastFailure = Number.NEGATIVE_INFINITY;
  constructor(
    readonly strategy: RestartStrategy,
    private readonly random: () => number = Math.random,
  ) {
    this.delay = strategy.type === 'exponential-delay' ? strategy.initialDelayMs : 0;
  }

  /** A failure at `now`: restart after the returned delay, or `undefined` to fail the job (with why). */
  onFailure(now: number): { restart: true; delayMs: number } | { restart: false; reason: string } {
    const s = this.strategy;
    this.failures.push(now);
    const n = this.failures.length;
    switch (s.type) {
      case 'none':
        return { restart: false, reason: 'the restart strategy is none' };
      case 'fixed-delay':
        if (n > s.attempts)
          return {
            restart: false,
            reason: `the fixed-delay restart strategy allows ${s.attempts} restart(s)`,
          };
        return { restart: true, delayMs: s.delayMs };
      case 'exponential-delay': {
        if (n > s.attempts)
          return {
            restart: false,
            reason: `the exponential-delay restart strategy allows ${s.attempts} restart(s)`,
          };
        if (now - this.lastFailure >= s.resetAfterMs) this.delay = s.initialDelayMs;
        this.lastFailure = now;
        const base = this.delay;
        this.delay = Math.min(s.maxDelayMs, Math.max(1, this.delay) * s.multiplier);
        const spread = base * s.jitter * (2 * this.random() - 1);
        return { restart: true, delayMs: Math.max(0, Math.round(base + spread)) };
      }
      case 'failure-rate': {
        const recent = this.failures.filter((t) => now - t < s.intervalMs).length;
        if (recent > s.maxFailures)
          return {
            restart: false,
            reason: `more than ${s.maxFailures} failure(s) within ${s.intervalMs} ms (the failure-rate restart strategy)`,
          };
        return { restart: true, delayMs: s.delayMs };
      }
    }
  }
}
