/** `tidemark run`: runs a job module, with checkpoints, restore and restarts. */
import { describeErrorChain } from '../../state/errors.js';
import type { CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import { openCheckpointStorage } from '../../state/storage/open-storage.js';
import type { CheckpointStats } from '../checkpoint/coordinator.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  TaskManagerPool,
} from '../distributed/task-manager.js';
import { buildJob } from '../job.js';
import { describeEvent } from '../job-runner.js';
import type { JobMetricsSnapshot } from '../metrics.js';
import type { RestartStrategy } from '../restart-strategies.js';
import { listenForControl } from './control.js';
import { loadJob, UsageError } from './load-job.js';

/** The default checkpoint storage of the CLI: a directory in the working directory. */
export const DEFAULT_STORAGE = '.tidemark/checkpoints';

/** Flags of `tidemark run`. */
export interface RunFlags {
  parallelism?: number;
  maxParallelism?: number;
  progress?: boolean;
  checkpointInterval?: number;
  checkpointStorage?: string;
  checkpointMode?: 'exactly-once' | 'at-least-once';
  checkpointTimeout?: number;
  retain?: number;
  restore?: 'latest' | 'latest-or-fresh' | number;
  allowNonRestoredState?: boolean;
  restartStrategy?: RestartStrategy;
  jobId?: string;
  slots?: number;
  listen?: string;
  taskManagers?: number;
  token?: string;
  wait?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
}

/** The shared secret of a job manager and its task managers. */
export function tokenOf(flag: string | undefined): string {
  const token = flag ?? process.env.TIDEMARK_TOKEN;
  if (token === undefined || token.length < 8)
    throw new UsageError(
      'running on several hosts needs a shared token of at least 8 characters: --token or TIDEMARK_TOKEN',
    );
  return token;
}

/** Runs the job; returns the exit code. */
export async function runCommand(file: string, flags: RunFlags): Promise<number> {
  const loaded = await loadJob(file);
  const overrides = {
    jobName: loaded.name,
    ...(flags.parallelism === undefined ? {} : { parallelism: flags.parallelism }),
    ...(flags.maxParallelism === undefined ? {} : { maxParallelism: flags.maxParallelism }),
  };
  const env = await buildJob(loaded.definition, overrides);
  let storage: CheckpointStorage | undefined = env.getCheckpointStorage();
  if (
    flags.checkpointStorage !== undefined ||
    ((flags.checkpointInterval !== undefined || flags.restore !== undefined) && storage === undefined)
  )
    storage = openCheckpointStorage(flags.checkpointStorage ?? DEFAULT_STORAGE);
  if (storage !== undefined) env.setCheckpointStorage(storage);
  if (flags.checkpointInterval !== undefined)
    env.enableCheckpointing(flags.checkpointInterval, {
      ...(flags.checkpointMode === undefined ? {} : { mode: flags.checkpointMode }),
      ...(flags.checkpointTimeout === undefined ? {} : { timeoutMs: flags.checkpointTimeout }),
      ...(flags.retain === undefined ? {} : { retain: flags.retain }),
    });
  if (flags.restartStrategy !== undefined) env.setRestartStrategy(flags.restartStrategy);
  const jobId = flags.jobId ?? env.config.jobName;
  const log = (line: string) => process.stderr.write(`[${jobId}] ${line}\n`);
  let lastCheckpoint: CheckpointStats | undefined;
  /** Checkpoints that failed since the last one completed (for the progress line). */
  let failing: { count: number; last: number } | undefined;
  let pool: TaskManagerPool | undefined;
  if (flags.listen !== undefined) {
    const expected = flags.taskManagers ?? 1;
    const intervalMs = flags.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    const timeoutMs = flags.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (timeoutMs <= intervalMs)
      throw new UsageError(
        `--heartbeat-timeout (${timeoutMs} ms) must be longer than --heartbeat-interval (${intervalMs} ms)`,
      );
    log(`waiting for ${expected} task manager(s) on ${flags.listen}`);
    pool = await TaskManagerPool.listen(flags.listen, tokenOf(flags.token), expected, {
      log,
      heartbeatIntervalMs: intervalMs,
      heartbeatTimeoutMs: timeoutMs,
      ...(flags.wait === undefined ? {} : { timeoutMs: flags.wait }),
    });
  }
  const slots = flags.slots ?? pool?.slots;
  const client = env.executeAsync({
    jobId,
    ...(pool !== undefined
      ? { distributed: { slots: slots!, jobPath: loaded.path, overrides, provider: pool } }
      : slots === undefined || slots < 2
        ? {}
        : { distributed: { slots, jobPath: loaded.path, overrides } }),
    ...(flags.restore === undefined ? {} : { restore: flags.restore }),
    ...(flags.allowNonRestoredState === true ? { allowNonRestoredState: true } : {}),
    onEvent: (e) => {
      if (e.type === 'checkpoint') {
        lastCheckpoint = e.stats;
        failing = undefined;
      } else if (e.type !== 'running' && e.type !== 'finished') log(describeEvent(e));
      if (e.type === 'checkpoint-failed')
        failing = { count: (failing?.count ?? 0) + 1, last: e.checkpointId };
    },
  });
  const onSignal = () => client.cancel();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stopControl =
    flags.checkpointInterval !== undefined
      ? await listenForControl(jobId, { savepoint: () => client.triggerSavepoint() }).catch(() => undefined)
      : undefined;
  const progress =
    flags.progress === true
      ? startProgress(
          client.jobName,
          () => client.metrics(),
          () => lastCheckpoint,
          () => failing,
        )
      : undefined;
  try {
    const result = await client.result;
    progress?.stop(result.metrics);
    return result.status === 'FINISHED' ? 0 : 130;
  } catch (e) {
    progress?.stop(undefined);
    process.stderr.write(`tidemark: ${describeErrorChain(e)}\n`);
    return 1;
  } finally {
    pool?.close();
    stopControl?.();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Prints a progress line every second (rewritten in place on a terminal). */
function startProgress(
  jobName: string,
  read: () => JobMetricsSnapshot,
  checkpoint: () => CheckpointStats | undefined,
  failing: () => { count: number; last: number } | undefined,
): { stop(final: JobMetricsSnapshot | undefined): void } {
  const tty = process.stderr.isTTY === true;
  const start = Date.now();
  let last = { t: start, events: 0 };
  const fmt = new Intl.NumberFormat('en-US');
  const line = (m: JobMetricsSnapshot, final: boolean) => {
    const now = Date.now();
    const dt = (now - last.t) / 1000;
    const rate = final
      ? (m.sourceRecords * 1000) / Math.max(1, now - start)
      : dt > 0
        ? Math.max(0, m.sourceRecords - last.events) / dt // a restart counts from 0 again
        : 0;
    last = { t: now, events: m.sourceRecords };
    const cp = checkpoint();
    const cpText =
      cp === undefined
        ? ''
        : ` | checkpoint ${cp.checkpointId} (${((now - cp.completedAt) / 1000).toFixed(1)} s ago, ${fmt.format(cp.fullBytes)} bytes)`;
    const f = failing();
    const failText =
      f === undefined
        ? ''
        : ` | ${f.count} checkpoint(s) failed since${cp === undefined ? ' the start' : ''} (last ${f.last})`;
    return `[${jobName}] ${((now - start) / 1000).toFixed(1)} s | events ${fmt.format(m.sourceRecords)} (${fmt.format(Math.round(rate))}/s${final ? ' average' : ''}) | records out ${fmt.format(m.sinkRecords)}${cpText}${failText}`;
  };
  const timer = setInterval(() => {
    const text = line(read(), false);
    process.stderr.write(tty ? `\r\x1b[2K${text}` : `${text}\n`);
  }, 1000);
  timer.unref();
  return {
    stop(final) {
      clearInterval(timer);
      if (final !== undefined) {
        const text = line(final, true);
        process.stderr.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
      } else if (tty) process.stderr.write('\n');
    },
  };
}
