/** Parsers of CLI option values. */
import { InvalidArgumentError } from 'commander';
import { RestartStrategies, type RestartStrategy } from '../restart-strategies.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('must be a positive integer.');
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('must be a non-negative integer.');
  return n;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `1s`, `2.5m`, `1h`, or a number of milliseconds. */
export function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (m === null) throw new InvalidArgumentError('must be a duration such as 500ms, 1s, 2m or 1h.');
  const ms = Number(m[1]) * UNITS[m[2] ?? 'ms']!;
  if (!(ms > 0)) throw new InvalidArgumentError('must be positive.');
  return ms;
}

/** `latest`, `latest-or-fresh` or a checkpoint/savepoint id. */
export function restoreTarget(value: string): 'latest' | 'latest-or-fresh' | number {
  if (value === 'latest' || value === 'latest-or-fresh') return value;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1)
    throw new InvalidArgumentError("must be 'latest', 'latest-or-fresh' or a checkpoint id.");
  return n;
}

/**
 * `none`, `fixed-delay[:attempts[:delay]]`, `exponential-delay`, or
 * `failure-rate[:maxFailures[:interval[:delay]]]`.
 */
export function restartStrategy(value: string): RestartStrategy {
  const [kind, ...args] = value.split(':');
  try {
    switch (kind) {
      case 'none':
        return RestartStrategies.none();
      case 'fixed-delay':
        return RestartStrategies.fixedDelay(
          args[0] === undefined ? 3 : nonNegativeInt(args[0]),
          args[1] === undefined ? 1000 : duration(args[1]),
        );
      case 'exponential-delay':
        return RestartStrategies.exponentialDelay();
      case 'failure-rate':
        return RestartStrategies.failureRate(
          args[0] === undefined ? 3 : positiveInt(args[0]),
          args[1] === undefined ? 60_000 : duration(args[1]),
          args[2] === undefined ? 1000 : duration(args[2]),
        );
    }
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  throw new InvalidArgumentError(
    'must be none, fixed-delay[:attempts[:delay]], exponential-delay or failure-rate[:max[:interval[:delay]]].',
  );
}
