/** `tidemark run`: runs a job module, with checkpoints, restore and restarts. */
import { createServer } from 'node:net';
import { describeErrorChain } from '../../state/errors.js';
import { CheckpointNotFoundError, type CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import type { CheckpointStats } from '../checkpoint/coordinator.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  TaskManagerPool,
} from '../distributed/task-manager.js';
import { parseAddress } from '../distributed/wire.js';
import type { JobClient } from '../environment.js';
import { buildJob } from '../job.js';
import { describeEvent } from '../job-runner.js';
import type { JobMetricsSnapshot } from '../metrics.js';
import type { RestartStrategy } from '../restart-strategies.js';
import { listenForControl } from './control.js';
import { loadJobModule, UsageError } from './load-job.js';
import { clusterSecurity, openStorage, storageUrl } from './secrets.js';

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
  restore?: 'latest' | number;
  allowNonRestoredState?: boolean;
  restartStrategy?: RestartStrategy;
  jobId?: string;
  slots?: number;
  listen?: string;
  taskManagers?: number;
  token?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  frameTimeout?: number;
  redisPasswordFile?: string;
  wait?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
}

/** Options of `run` that mean something only with `--listen`. */
const LISTEN_ONLY: [keyof RunFlags, string][] = [
  ['taskManagers', '--task-managers'],
  ['token', '--token'],
  ['tokenFile', '--token-file'],
  ['frameTimeout', '--frame-timeout'],
  ['wait', '--wait'],
  ['heartbeatInterval', '--heartbeat-interval'],
  ['heartbeatTimeout', '--heartbeat-timeout'],
];

/** Options of `run` that mean something only with `--checkpoint-interval`. */
const CHECKPOINTING_ONLY: [keyof RunFlags, string][] = [
  ['checkpointMode', '--checkpoint-mode'],
  ['checkpointTimeout', '--checkpoint-timeout'],
  ['retain', '--retain'],
];

/** Refuses flags that contradict each other or would be ignored ({@link UsageError}, exit code 2). */
export function checkRunFlags(flags: RunFlags): void {
  if (flags.listen !== undefined && flags.slots !== undefined)
    throw new UsageError(
      "--slots and --listen cannot be used together: with --listen the slots are the task managers' (tidemark taskmanager --slots N)",
    );
  const given = (list: [keyof RunFlags, string][]) =>
    list.filter(([key]) => flags[key] !== undefined).map(([, name]) => name);
  const listenOnly = flags.listen === undefined ? given(LISTEN_ONLY) : [];
  if (listenOnly.length > 0)
    throw new UsageError(`${listenOnly.join(', ')} ${listenOnly.length > 1 ? 'need' : 'needs'} --listen`);
  const checkpointingOnly = flags.checkpointInterval === undefined ? given(CHECKPOINTING_ONLY) : [];
  if (checkpointingOnly.length > 0)
    throw new UsageError(
      `${checkpointingOnly.join(', ')} ${checkpointingOnly.length > 1 ? 'need' : 'needs'} --checkpoint-interval`,
    );
  if (flags.allowNonRestoredState === true && flags.restore === undefined)
    throw new UsageError('--allow-non-restored-state needs --restore');
  const intervalMs = flags.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const timeoutMs = flags.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  if (timeoutMs <= intervalMs)
    throw new UsageError(
      `--heartbeat-timeout (${timeoutMs} ms) must be longer than --heartbeat-interval (${intervalMs} ms)`,
    );
}

/**
 * Checks that this host can listen on `address` (host:port), before waiting there: a malformed
 * address, or one this host has not (or whose port is taken), is a {@link UsageError}.
 */
async function checkListenAddress(address: string): Promise<void> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseAddress(address));
  } catch {
    throw new UsageError(`--listen '${address}' is not host:port (e.g. 0.0.0.0:6123)`);
  }
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (e) => reject(new UsageError(`cannot listen on ${address}: ${e.message}`)));
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/**
 * After the first SIGINT or SIGTERM, how long the job has to stop (it is cancelled) before the
 * process exits anyway: the first signal always ends a run, even one stuck in a call that cannot
 * be cancelled (a storage that does not answer).
 */
export const CANCEL_GRACE_MS = 10_000;

/**
 * Makes SIGINT and SIGTERM cancel the jobs (see {@link CANCEL_GRACE_MS}); returns a function
 * that stops listening.
 */
function cancelOnSignals(clients: () => readonly JobClient[]): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    for (const client of clients()) client.cancel();
    // NOTE: not cleared when the run ends: a process that stays alive after its job (a handle
    // that never closes) is ended too. A second signal ends it at once (the default handler).
    setTimeout(() => {
      process.stderr.write(
        `tidemark: the job did not stop within ${CANCEL_GRACE_MS / 1000} s of ${signal}; exiting\n`,
      );
      process.exit(130);
    }, CANCEL_GRACE_MS).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** `--max-parallelism` for `maxParallelism`. */
function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Runs the job; returns the exit code. */
export async function runCommand(file: string, flags: RunFlags): Promise<number> {
  checkRunFlags(flags);
  if (flags.listen !== undefined) await checkListenAddress(flags.listen);
  // A module that runs its job itself when loaded (`await env.execute()` at its top level, a
  // program as Flink runs one): its jobs are the run. NOTE: the flags that shape a job apply to
  // job(...) modules only; given for such a module, they are refused before its job starts.
  const executions: JobClient[] = [];
  let stopSignals: (() => void) | undefined;
  let selfProgress: ReturnType<typeof startProgress> | undefined;
  const loaded = await loadJobModule(file, {
    beforeExecute: () => {
      const given = Object.entries(flags)
        .filter(([key, value]) => value !== undefined && key !== 'progress')
        .map(([key]) => flagName(key));
      if (given.length > 0)
        throw new UsageError(
          `${file} runs its job itself when it is loaded (env.execute()): ${given.join(', ')} ${given.length > 1 ? 'apply' : 'applies'} only to a module whose default export is job((env) => { ... })`,
        );
    },
    started: (client) => {
      executions.push(client);
      // Settled below, after the module: not an unhandled rejection meanwhile.
      client.result.catch(() => {});
      stopSignals ??= cancelOnSignals(() => executions);
      if (flags.progress === true)
        selfProgress ??= startProgress(
          client.jobName,
          () => client.metrics(),
          () => client.lastCheckpoint(),
        );
    },
  });
  if (!('definition' in loaded)) {
    const results = await Promise.allSettled(executions.map((c) => c.result));
    const last = results.at(-1);
    selfProgress?.stop(last?.status === 'fulfilled' ? last.value.metrics : undefined);
    stopSignals?.();
    let code = 0;
    for (const r of results)
      if (r.status === 'rejected') {
        process.stderr.write(`tidemark: ${describeErrorChain(r.reason)}\n`);
        code = 1;
      } else if (r.value.status !== 'FINISHED' && code === 0) code = 130;
    return code;
  }
  const overrides = {
    jobName: loaded.name,
    ...(flags.parallelism === undefined ? {} : { parallelism: flags.parallelism }),
    ...(flags.maxParallelism === undefined ? {} : { maxParallelism: flags.maxParallelism }),
  };
  const env = await buildJob(loaded.definition, overrides);
  let storage: CheckpointStorage | undefined = env.getCheckpointStorage();
  const url = storageUrl(flags.checkpointStorage);
  if (
    url !== undefined ||
    ((flags.checkpointInterval !== undefined || flags.restore !== undefined) && storage === undefined)
  )
    storage = openStorage(url ?? DEFAULT_STORAGE, {
      url: flags.checkpointStorage,
      redisPasswordFile: flags.redisPasswordFile,
    });
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
  let pool: TaskManagerPool | undefined;
  if (flags.listen !== undefined) {
    const expected = flags.taskManagers ?? 1;
    const intervalMs = flags.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    const timeoutMs = flags.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    const { token, tls } = clusterSecurity(flags);
    log(`waiting for ${expected} task manager(s) on ${flags.listen}${tls === undefined ? '' : ' (TLS)'}`);
    pool = await TaskManagerPool.listen(flags.listen, token, expected, {
      log,
      heartbeatIntervalMs: intervalMs,
      heartbeatTimeoutMs: timeoutMs,
      tls,
      ...(flags.frameTimeout === undefined ? {} : { frameTimeoutMs: flags.frameTimeout }),
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
      if (e.type === 'checkpoint') lastCheckpoint = e.stats;
      else if (e.type !== 'running' && e.type !== 'finished') log(describeEvent(e));
    },
  });
  const stopCancelling = cancelOnSignals(() => [client]);
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
        )
      : undefined;
  try {
    const result = await client.result;
    progress?.stop(result.metrics);
    return result.status === 'FINISHED' ? 0 : 130;
  } catch (e) {
    progress?.stop(undefined);
    process.stderr.write(`tidemark: ${describeErrorChain(e)}\n`);
    // A checkpoint to restore that is not there is a usage mistake, as an unknown id elsewhere.
    const unknownRestore =
      e instanceof CheckpointNotFoundError &&
      typeof flags.restore === 'number' &&
      e.context.checkpointId === flags.restore;
    return unknownRestore ? 2 : 1;
  } finally {
    pool?.close();
    stopControl?.();
    stopCancelling();
  }
}

/** Prints a progress line every second (rewritten in place on a terminal). */
function startProgress(
  jobName: string,
  read: () => JobMetricsSnapshot,
  checkpoint: () => CheckpointStats | undefined,
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
        ? (m.sourceRecords - last.events) / dt
        : 0;
    last = { t: now, events: m.sourceRecords };
    const cp = checkpoint();
    const cpText =
      cp === undefined
        ? ''
        : ` | checkpoint ${cp.checkpointId} (${((now - cp.completedAt) / 1000).toFixed(1)} s ago, ${fmt.format(cp.fullBytes)} bytes)`;
    return `[${jobName}] ${((now - start) / 1000).toFixed(1)} s | events ${fmt.format(m.sourceRecords)} (${fmt.format(Math.round(rate))}/s${final ? ' average' : ''}) | records out ${fmt.format(m.sinkRecords)}${cpText}`;
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
