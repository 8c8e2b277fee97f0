/**
 * Jobs a test starts with `executeAsync`, kept in hand: a job's failure is never an unhandled
 * rejection (whatever path the test takes), a wait for a condition fails at once with the job's
 * error if the job ended first, and a job still running when its test ends is cancelled and
 * awaited, so that it cannot fail later, in another test's time.
 */
import { onTestFinished } from 'vitest';
import type { JobClient } from '../../runtime/environment.js';

/** How long a wait for a condition may take before it fails: long, for a loaded machine. */
export const WAIT_TIMEOUT_MS = 60_000;

interface Outcome {
  done: boolean;
  error?: unknown;
}

const outcomes = new WeakMap<JobClient, Outcome>();

/** Takes a started job in hand (see the module comment); returns it. Call it in a test. */
export function watched<C extends JobClient>(client: C): C {
  const outcome: Outcome = { done: false };
  outcomes.set(client, outcome);
  // NOTE: a handler from the start: the test awaits `client.result` itself where it expects an end.
  client.result.then(
    () => {
      outcome.done = true;
    },
    (e: unknown) => {
      outcome.done = true;
      outcome.error = e;
    },
  );
  onTestFinished(async () => {
    if (outcome.done) return;
    client.cancel();
    await client.result.catch(() => undefined);
  });
  return client;
}

/**
 * Polls until `done()` holds. Fails if `job` (if given, {@link watched}) ended first (with its
 * error, if it failed), or after `timeoutMs`, saying what it waited for.
 */
export async function waitFor(
  done: () => boolean | Promise<boolean>,
  what: string,
  options: { job?: JobClient; timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? WAIT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const outcome = options.job === undefined ? undefined : outcomes.get(options.job);
  if (options.job !== undefined && outcome === undefined)
    throw new Error('waitFor: the job is not watched()');
  while (!(await done())) {
    if (outcome?.done === true)
      throw new Error(
        `the job ended while waiting for ${what}${outcome.error === undefined ? '' : `: ${String((outcome.error as Error)?.message ?? outcome.error)}`}`,
        { cause: outcome.error },
      );
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 5));
  }
}
