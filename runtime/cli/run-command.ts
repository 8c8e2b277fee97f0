/** `tidemark run`: runs a job module, with checkpoints, restore and restarts. */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { describeErrorChain } from '../../state/errors.js';
import { DEFAULT_STATE_DIR, stateBackendFromEnv } from '../../state/state-backends.js';
import {
  CheckpointNotFoundError,
  type CheckpointStorage,
  FencedError,
} from '../../state/storage/checkpoint-storage.js';
import { LeadershipError } from '../../state/storage/leases.js';
import { openLeaseStorage } from '../../state/storage/open-storage.js';
import type { CheckpointStats } from '../checkpoint/coordinator.js';
import { electLeader, type Leadership } from '../distributed/leader-election.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  TaskManagerPool,
} from '../distributed/task-manager.js';
import { parseAddress } from '../distributed/wire.js';
import type { JobClient } from '../environment.js';
import { buildJob } from '../job.js';
import { describeEvent, type RestoreTarget, type RunnerEvent } from '../job-runner.js';
import { errorFields, jobLogger, type LogFields, type LogLevel, log as rootLog } from '../log.js';
import type { JobMetricsSnapshot } from '../metrics.js';
import { JobObserver } from '../observe/job-observer.js';
import { startWebServer, type WebServer } from '../observe/rest-server.js';
import type { RestartStrategy } from '../restart-strategies.js';
import { listenForControl } from './control.js';
import { loadJobModule, UsageError } from './load-job.js';
import { clusterSecurity, openStorage, storageUrl } from './secrets.js';
import { packageVersion, webToken } from './web-client.js';

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
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  frameTimeout?: number;
  redisPasswordFile?: string;
  wait?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
  ha?: string;
  standby?: boolean;
  leaseDuration?: number;
  slotRequestTimeout?: number;
  webPort?: number;
  webHost?: string;
  webToken?: string;
  webTokenFile?: string;
  webStallThreshold?: number;
  stateBackend?: 'heap' | 'lmdb';
  stateDir?: string;
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
  ['slotRequestTimeout', '--slot-request-timeout'],
];

/** Options of `run` that mean something only with `--web-port`. */
const WEB_ONLY: [keyof RunFlags, string][] = [
  ['webHost', '--web-host'],
  ['webToken', '--web-token'],
  ['webTokenFile', '--web-token-file'],
  ['webStallThreshold', '--web-stall-threshold'],
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
  const webOnly = flags.webPort === undefined ? given(WEB_ONLY) : [];
  if (webOnly.length > 0)
    throw new UsageError(`${webOnly.join(', ')} ${webOnly.length > 1 ? 'need' : 'needs'} --web-port`);
  const checkpointingOnly = flags.checkpointInterval === undefined ? given(CHECKPOINTING_ONLY) : [];
  if (checkpointingOnly.length > 0)
    throw new UsageError(
      `${checkpointingOnly.join(', ')} ${checkpointingOnly.length > 1 ? 'need' : 'needs'} --checkpoint-interval`,
    );
  if (flags.allowNonRestoredState === true && flags.restore === undefined)
    throw new UsageError('--allow-non-restored-state needs --restore');
  if (flags.stateDir !== undefined && flags.stateBackend !== 'lmdb')
    throw new UsageError(
      '--state-dir is the directory of the lmdb state backend: it needs --state-backend lmdb',
    );
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
function cancelOnSignals(
  clients: () => readonly JobClient[],
  beforeCancel?: (signal: NodeJS.Signals) => void,
): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    beforeCancel?.(signal);
    for (const client of clients()) client.cancel();
    // NOTE: not cleared when the run ends: a process that stays alive after its job (a handle
    // that never closes) is ended too. A second signal ends it at once (the default handler).
    setTimeout(() => {
      rootLog.error(`the job did not stop within ${CANCEL_GRACE_MS / 1000} s of ${signal}; exiting`);
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

/** Fails early, naming the directory, when the lmdb state backend cannot write its state directory. */
function checkStateDir(backend: { kind: string; dir?: string } | undefined): void {
  if (backend?.kind !== 'lmdb') return;
  const dir = backend.dir ?? DEFAULT_STATE_DIR;
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new UsageError(
      `the lmdb state backend cannot use the state directory '${dir}' (--state-dir): ${(e as Error).message}`,
    );
  }
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
        rootLog.error(describeErrorChain(r.reason), errorFields(r.reason));
        code = 1;
      } else if (r.value.status !== 'FINISHED' && code === 0) code = 130;
    return code;
  }
  // NOTE: --state-backend is an environment option, as -p is: a job whose code calls
  // env.setStateBackend keeps its own (the job's code wins, see "Configuration"). The choice
  // travels to the slots and task managers with the job graph.
  const stateDir = flags.stateDir ?? (process.env.TIDEMARK_STATE_DIR || undefined);
  const overrides = {
    jobName: loaded.name,
    ...(flags.parallelism === undefined ? {} : { parallelism: flags.parallelism }),
    ...(flags.maxParallelism === undefined ? {} : { maxParallelism: flags.maxParallelism }),
    ...(flags.stateBackend === undefined
      ? {}
      : {
          stateBackend: {
            kind: flags.stateBackend,
            ...(flags.stateBackend === 'lmdb' && stateDir !== undefined ? { dir: stateDir } : {}),
          },
        }),
  };
  const env = await buildJob(loaded.definition, overrides);
  checkStateDir(env.getStateBackend() ?? stateBackendFromEnv());
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
  const logger = jobLogger(jobId, { component: 'jobmanager' });
  const log = (line: string, level: LogLevel = 'info') => logger[level](line);
  const heartbeat = heartbeatOf(flags);
  const security = flags.listen === undefined ? undefined : clusterSecurity(flags);
  // NOTE: a job manager leads its job id through a lease, so that no other runs beside it: in the
  // high-availability store (--ha), or else in the checkpoint storage the job writes to.
  const standby = flags.standby === true || flags.ha !== undefined;
  // NOTE: a signal while the lease store opens (one that does not answer) ends the process at once.
  const beforeStart = (signal: NodeJS.Signals) => {
    rootLog.error(`${signal} before the job started; exiting`);
    process.exit(130);
  };
  process.once('SIGINT', beforeStart);
  process.once('SIGTERM', beforeStart);
  let leases: CheckpointStorage | undefined;
  try {
    leases = await openLeases(flags, env.isCheckpointingEnabled() ? storage : undefined);
  } finally {
    process.off('SIGINT', beforeStart);
    process.off('SIGTERM', beforeStart);
  }
  if (leases === undefined && standby)
    throw new UsageError(
      '--standby needs a place for the leader lease: --ha URL, or checkpointing to a file or Redis checkpoint storage',
    );
  // Ctrl-C while waiting as a standby ends the wait.
  const interrupted = new AbortController();
  const onWaitSignal = () => interrupted.abort(new Error('interrupted while waiting as a standby'));
  process.once('SIGINT', onWaitSignal);
  process.once('SIGTERM', onWaitSignal);
  let leadership: Leadership | undefined;
  let restore: RestoreTarget | undefined = flags.restore;
  try {
    if (leases !== undefined) {
      const outcome = await electLeader({
        store: leases.leases!(),
        jobId,
        address: flags.listen === undefined ? undefined : advertisedAddress(flags.listen),
        leaseMs: flags.leaseDuration,
        standby,
        // Without standbys the lease only fences a second job manager started by mistake: an
        // outage of the store does not end the run (see the storage-outage tests).
        outlastOutages: !standby,
        log,
        signal: interrupted.signal,
      });
      if (outcome.outcome === 'ended') {
        log(
          `the run of job '${jobId}' ended under the job manager at ${outcome.run.by} (${outcome.run.status ?? 'ended'}); this standby has nothing to take over`,
        );
        await leases.close();
        return 0;
      }
      leadership = outcome.leadership;
      if (standby) log(`leading job '${jobId}' (lease in ${leases.description})`);
      restore = await startingPoint(leadership, storage, jobId, restore, standby, log);
    }
  } catch (e) {
    await leases?.close();
    if (interrupted.signal.aborted) {
      log('interrupted while waiting as a standby');
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onWaitSignal);
    process.off('SIGTERM', onWaitSignal);
  }
  let lastCheckpoint: CheckpointStats | undefined;
  /** Checkpoints that failed since the last one completed (for the progress line). */
  let failing: { count: number; last: number } | undefined;
  let pool: TaskManagerPool | undefined;
  let lost: string | undefined;
  let handingOver = false;
  let stopRun: (() => void) | undefined;
  leadership?.onLost((reason) => {
    lost = reason;
    log(
      `lost the leadership of job '${jobId}': ${reason}; stopping (the job manager that leads now goes on)`,
      'warn',
    );
    stopRun?.();
    pool?.close();
  });
  let status = 'FAILED';
  let observer: JobObserver | undefined;
  let web: WebServer | undefined;
  try {
    if (flags.listen !== undefined) {
      const expected = flags.taskManagers ?? 1;
      const { token, tls } = security!;
      log(`waiting for ${expected} task manager(s) on ${flags.listen}${tls === undefined ? '' : ' (TLS)'}`);
      pool = await TaskManagerPool.listen(flags.listen, token, expected, {
        log,
        ...heartbeat,
        tls,
        ...(flags.frameTimeout === undefined ? {} : { frameTimeoutMs: flags.frameTimeout }),
        ...(flags.wait === undefined ? {} : { timeoutMs: flags.wait }),
        ...(flags.slotRequestTimeout === undefined ? {} : { slotRequestTimeoutMs: flags.slotRequestTimeout }),
        // Above every deployment number an earlier leader of the job used.
        ...(leadership === undefined ? {} : { deploymentBase: leadership.generation * 2 ** 32 }),
      });
      if (lost !== undefined) pool.close();
    }
    if (lost !== undefined) throw new LeadershipError(jobId, lost);
    const slots = flags.slots ?? pool?.slots;
    const activePool = pool;
    observer =
      flags.webPort === undefined
        ? undefined
        : new JobObserver({
            mode: activePool !== undefined ? 'cluster' : slots !== undefined && slots > 1 ? 'slots' : 'local',
            slots: slots ?? 1,
            ...(activePool === undefined
              ? {}
              : {
                  taskManagers: () => activePool.taskManagers,
                  locateSlot: (s: number) => activePool.slotOwner(s),
                }),
            stallThresholdMs: flags.webStallThreshold,
            version: packageVersion(),
          });
    if (observer !== undefined) {
      const watched = observer;
      web = await startWebServer({
        host: flags.webHost,
        port: flags.webPort!,
        token: webToken(flags),
        observers: () => [watched],
        version: packageVersion(),
      }).catch((e: unknown) => {
        throw new UsageError(
          `cannot serve the web API on ${flags.webHost ?? '127.0.0.1'}:${flags.webPort}: ${(e as Error).message}`,
        );
      });
      process.stderr.write(`dashboard: ${web.url}\n`);
    }
    const client = env.executeAsync({
      jobId,
      ...(observer === undefined ? {} : { observer }),
      ...(pool !== undefined
        ? { distributed: { slots: slots!, jobPath: loaded.path, overrides, provider: pool } }
        : slots === undefined || slots < 2
          ? {}
          : { distributed: { slots, jobPath: loaded.path, overrides } }),
      ...(restore === undefined ? {} : { restore }),
      ...(flags.allowNonRestoredState === true ? { allowNonRestoredState: true } : {}),
      onEvent: (e) => {
        if (e.type === 'checkpoint') {
          lastCheckpoint = e.stats;
          failing = undefined;
        }
        logEvent(logger, e);
        if (e.type === 'checkpoint-failed')
          failing = { count: (failing?.count ?? 0) + 1, last: e.checkpointId };
      },
    });
    stopRun = () => client.cancel();
    // NOTE: a highly available job outlives its job manager's process, as in Flink: SIGTERM (a
    // supervisor stopping the process) hands the run over to a standby; Ctrl-C cancels the job.
    const stopCancelling = cancelOnSignals(
      () => [client],
      (signal) => {
        if (signal === 'SIGTERM' && leadership !== undefined && standby) {
          handingOver = true;
          log(`SIGTERM: handing job '${jobId}' over to a standby (Ctrl-C cancels the job)`);
        }
      },
    );
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
      if (lost !== undefined) throw new LeadershipError(jobId, lost);
      status = result.status;
      if (handingOver) return 143;
      return result.status === 'FINISHED' ? 0 : 130;
    } catch (e) {
      progress?.stop(undefined);
      // NOTE: fenced, another job manager leads the job now: this one only stops.
      if (lost === undefined && hasCause(e, FencedError)) lost = (e as Error).message;
      rootLog.error(
        lost === undefined
          ? describeErrorChain(e)
          : `job '${jobId}': stopped without a result: lost the leadership: ${lost}`,
        { job: jobId, ...errorFields(e) },
      );
      // A checkpoint to restore that is not there is a usage mistake, as an unknown id elsewhere.
      const unknownRestore =
        lost === undefined &&
        e instanceof CheckpointNotFoundError &&
        typeof flags.restore === 'number' &&
        e.context.checkpointId === flags.restore;
      return unknownRestore ? 2 : 1;
    } finally {
      stopControl?.();
      stopCancelling();
    }
  } finally {
    // NOTE: an ended run (finished, failed for good, cancelled) is over for every job manager: its
    // standbys learn so and exit, and so do its task managers. A job manager that lost its
    // leadership leaves both to the one that leads now; one that hands its run over gives its
    // lease up, so that a standby takes over at once.
    if (handingOver && lost === undefined) {
      await leadership
        ?.resign()
        .catch((e: unknown) => log(`could not give the lease up: ${(e as Error).message}`));
      pool?.close();
    } else if (lost === undefined) {
      await leadership
        ?.end(status)
        .catch((e: unknown) => log(`could not record the end of the run: ${(e as Error).message}`));
      pool?.shutdown(
        `job '${jobId}' ${status === 'FINISHED' ? 'finished' : status === 'CANCELLED' ? 'was cancelled' : 'failed'}`,
      );
    } else {
      leadership?.stop();
      pool?.close();
    }
    await leases?.close();
    await observer?.settleOperations();
    await web?.close();
  }
}

/**
 * Logs a runner event at its level with its fields. Checkpoints that complete, and the start and
 * end of an attempt, are debug records (the progress line shows them).
 */
function logEvent(logger: ReturnType<typeof jobLogger>, e: RunnerEvent): void {
  let level: LogLevel = 'info';
  let fields: LogFields = {};
  switch (e.type) {
    case 'restored':
      fields = { checkpoint: e.checkpointId };
      break;
    case 'fallback':
      level = 'warn';
      fields = { checkpoint: e.checkpointId, ...errorFields(e.error) };
      break;
    case 'checkpoint':
      level = 'debug';
      fields = {
        checkpoint: e.stats.checkpointId,
        durationMs: Math.round(e.stats.durationMs),
        bytesWritten: e.stats.bytesWritten,
        ...(e.stats.savepoint ? { savepoint: true } : {}),
        ...(e.stats.final ? { final: true } : {}),
      };
      break;
    case 'checkpoint-failed':
      level = 'warn';
      fields = { checkpoint: e.checkpointId };
      break;
    case 'running':
    case 'finished':
      level = 'debug';
      fields = { attempt: e.attempt };
      break;
    case 'restart':
      level = 'warn';
      fields = {
        ...errorFields(e.error),
        attempt: e.attempt,
        ...(e.fromCheckpoint === undefined ? {} : { checkpoint: e.fromCheckpoint }),
      };
      break;
    case 'fresh-start':
      break;
  }
  logger[level](describeEvent(e), fields);
}

/** The heartbeat settings of the flags. */
function heartbeatOf(flags: RunFlags): { heartbeatIntervalMs: number; heartbeatTimeoutMs: number } {
  // NOTE: checked by checkRunFlags.
  const intervalMs = flags.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const timeoutMs = flags.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  return { heartbeatIntervalMs: intervalMs, heartbeatTimeoutMs: timeoutMs };
}

/**
 * An opened storage holding the job's leader lease: the `--ha` store, or another instance of the
 * checkpoint storage the job writes to (a file or Redis storage); none for a memory storage.
 */
async function openLeases(
  flags: RunFlags,
  checkpoints: CheckpointStorage | undefined,
): Promise<CheckpointStorage | undefined> {
  const storage =
    flags.ha !== undefined ? openLeaseStorage(flags.ha) : checkpoints && openLeaseStorage(checkpoints);
  if (storage?.leases === undefined) {
    if (flags.ha !== undefined)
      throw new UsageError(
        `--ha ${flags.ha}: keeps no leader leases (use redis://..., rediss://... or a directory)`,
      );
    return undefined;
  }
  await storage.open();
  return storage;
}

/** Where task managers reach a job manager listening on `listen` (a wildcard host: this host's name). */
function advertisedAddress(listen: string): string {
  const { host, port } = parseAddress(listen);
  return `${['0.0.0.0', '::', ''].includes(host) ? hostname() : host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Where the run starts from, and says so in the job's run record. A job manager of a highly
 * available job (a standby, or started with --ha) that takes over a run still under way resumes it:
 * from the latest checkpoint if the run made one, or else from where that run started.
 */
async function startingPoint(
  leadership: Leadership,
  storage: CheckpointStorage | undefined,
  jobId: string,
  requested: RestoreTarget | undefined,
  highlyAvailable: boolean,
  log: (line: string, level?: LogLevel) => void,
): Promise<RestoreTarget | undefined> {
  await storage?.open();
  const latest = await storage?.latest(jobId);
  let restore = requested;
  const previous = leadership.previousRun;
  if (highlyAvailable && previous?.state === 'running') {
    const ran = latest !== undefined && latest > (previous.latestAtStart ?? 0);
    restore = ran ? 'latest' : previous.startedFrom;
    log(
      `taking over the run of job '${jobId}' from the job manager at ${previous.by}: resuming ${ran ? `from its latest checkpoint (${latest})` : restore === undefined ? 'from the beginning (its run has no checkpoint yet)' : `from checkpoint ${restore}, where its run started (it has no checkpoint of its own yet)`}`,
    );
  }
  const from = restore === 'latest' || restore === 'latest-or-fresh' ? latest : restore;
  await leadership.writeRun({
    state: 'running',
    ...(from === undefined ? {} : { startedFrom: from }),
    ...(latest === undefined ? {} : { latestAtStart: latest }),
  });
  return restore;
}

function hasCause(e: unknown, cls: abstract new (...args: never[]) => Error): boolean {
  let c: unknown = e;
  for (let i = 0; c instanceof Error && i < 8; i++) {
    if (c instanceof cls) return true;
    c = (c as Error).cause;
  }
  return false;
}

/** Prints a progress line every second (rewritten in place on a terminal). */
function startProgress(
  jobName: string,
  read: () => JobMetricsSnapshot,
  checkpoint: () => CheckpointStats | undefined,
  failing: () => { count: number; last: number } | undefined = () => undefined,
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
