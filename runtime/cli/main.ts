/** The `tidemark` command line. `main` returns the exit code. */
import { createHash } from 'node:crypto';
import { Command, CommanderError, Option } from 'commander';
import { describeErrorChain } from '../../state/errors.js';
import { DEFAULT_STATE_DIR } from '../../state/state-backends.js';
import { openLeaseStorage } from '../../state/storage/open-storage.js';
import { leaderAddress } from '../distributed/leader-election.js';
import { runTaskManager } from '../distributed/task-manager.js';
import type { PlanFormat } from '../graph/plan.js';
import { buildJob } from '../job.js';
import {
  configureLogging,
  errorFields,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  log,
  logWarning,
} from '../log.js';
import {
  deleteCheckpoint,
  listCheckpoints,
  savepointCommand,
  showCheckpoint,
} from './checkpoint-commands.js';
import { loadJob, UsageError } from './load-job.js';
import { duration, nonNegativeInt, positiveInt, restartStrategy, restoreTarget } from './options.js';
import { DEFAULT_STORAGE, type RunFlags, runCommand } from './run-command.js';
import { type ClusterSecurityFlags, clusterSecurity, type StorageCommandFlags } from './secrets.js';
import {
  cancelJob,
  type JobCommandFlags,
  jobManagerUrl,
  jobStatus,
  listJobs,
  packageVersion,
  savepointViaRest,
  stopJob,
} from './web-client.js';

const version = packageVersion;

interface GraphFlags {
  parallelism?: number;
  maxParallelism?: number;
}

/** The exit code of a command whose reader went away (`tidemark ... | head`): 128 + SIGPIPE. */
export const EXIT_BROKEN_PIPE = 141;

/**
 * Process-wide behaviour of the command: standard output or error closed by its reader ends the
 * process quietly, as a Unix tool killed by SIGPIPE (Node ignores SIGPIPE and reports EPIPE as an
 * error event instead); warnings print as one line each, without Node's `--trace-warnings` hint.
 */
function installProcessHandlers(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
      throw e;
    });
  // NOTE: Node's own printer of warnings is a 'warning' listener; ours replaces it.
  process.removeAllListeners('warning');
  process.on('warning', logWarning);
}

/** Adds the options of a cluster's secrets and TLS (`run --listen` and `taskmanager`). */
function clusterSecurityOptions(c: Command): void {
  c.option('--token-file <file>', 'read the shared token from this file (or TIDEMARK_TOKEN_FILE)')
    .addOption(
      new Option('--tls-cert <file>', "TLS on every connection: this process's certificate (PEM)").env(
        'TIDEMARK_TLS_CERT',
      ),
    )
    .addOption(new Option('--tls-key <file>', "the certificate's private key (PEM)").env('TIDEMARK_TLS_KEY'))
    .addOption(
      new Option(
        '--tls-ca <file>',
        'mutual TLS: accept only peers with a certificate this CA signed (PEM); the token is then optional',
      ).env('TIDEMARK_TLS_CA'),
    )
    .option(
      '--frame-timeout <duration>',
      'close a connection whose incomplete frame gets no byte for this long (default 60s; keep it above the heartbeat timeout)',
      duration,
    );
}

/** Adds the options of a checkpoint storage's secrets (besides its URL). */
function storageSecretOptions(c: Command): void {
  c.option(
    '--redis-password-file <file>',
    'read the Redis password from this file (or TIDEMARK_REDIS_PASSWORD, TIDEMARK_REDIS_PASSWORD_FILE); overrides one in the URL',
  );
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  installProcessHandlers();
  let code = 0;
  const program = new Command('tidemark')
    .description('tidemark: an event-time dataflow runtime for TypeScript')
    .version(version(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`tidemark: ${s.replace(/^error: /, '').trimEnd()}\n`),
    })
    .addOption(
      new Option('--log-level <level>', 'log records at this level and above (default info)')
        .choices(LOG_LEVELS)
        .env('TIDEMARK_LOG_LEVEL'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'line: a line as tidemark always wrote (default off a terminal); pretty: time, level, message and fields (default on a terminal); json: a JSON object per line',
      )
        .choices(LOG_FORMATS)
        .env('TIDEMARK_LOG_FORMAT'),
    )
    .hook('preAction', (_program, command) => {
      const { logLevel, logFormat } = command.optsWithGlobals<{
        logLevel?: LogLevel;
        logFormat?: LogFormat;
      }>();
      configureLogging({
        ...(logLevel === undefined ? {} : { level: logLevel }),
        ...(logFormat === undefined ? {} : { format: logFormat }),
      });
    });

  const graphOptions = (c: Command) =>
    c
      .option('-p, --parallelism <n>', 'default parallelism of operators', positiveInt)
      .option('--max-parallelism <n>', 'maximum parallelism (number of key groups)', positiveInt);

  const run = graphOptions(
    program
      .command('run')
      .description('run a job module')
      .argument('<job>', 'path to the job module (.ts or .js)'),
  )
    .option('--progress', 'print a live progress line to standard error')
    .option(
      '--slots <n>',
      'run on this many slots (worker threads); subtask i of every operator runs in slot i mod n',
      positiveInt,
    )
    .option('--listen <host:port>', 'be the job manager of task managers on other hosts, listening here')
    .option(
      '--task-managers <n>',
      'with --listen: how many task managers to wait for (default 1)',
      positiveInt,
    )
    .option(
      '--token <secret>',
      'with --listen: the shared secret of the job manager and task managers (or TIDEMARK_TOKEN); ps shows it: prefer --token-file',
    )
    .option(
      '--wait <duration>',
      'with --listen: how long to wait for the task managers (default 2m)',
      duration,
    )
    .option(
      '--heartbeat-interval <duration>',
      'with --listen: how often to send each task manager a heartbeat (default 10s)',
      duration,
    )
    .option(
      '--heartbeat-timeout <duration>',
      'with --listen: give up a task manager not heard from for this long, and restart the job without it; a task manager stops its slots when the job manager is silent this long (default 50s)',
      duration,
    )
    .addOption(
      new Option(
        '--state-backend <backend>',
        'where keyed state (and window contents) lives: heap (in memory, the default) or lmdb (an embedded database on local disk, for state larger than memory); a job that calls env.setStateBackend keeps its own (default: TIDEMARK_STATE_BACKEND, else heap)',
      ).choices(['heap', 'lmdb']),
    )
    .option(
      '--state-dir <dir>',
      `with --state-backend lmdb: the local directory of the state databases, one fresh subdirectory per keyed subtask, deleted when it ends (default: TIDEMARK_STATE_DIR, else ${DEFAULT_STATE_DIR})`,
    )
    .option('--checkpoint-interval <duration>', 'take a checkpoint every interval (e.g. 1s, 500ms)', duration)
    .option(
      '--checkpoint-storage <url>',
      `where checkpoints go: a directory, file:///dir, redis://..., rediss://... (TLS), memory://name (or TIDEMARK_CHECKPOINT_STORAGE; default ${DEFAULT_STORAGE})`,
    )
    .addOption(
      new Option('--checkpoint-mode <mode>', 'barrier alignment').choices(['exactly-once', 'at-least-once']),
    )
    .option('--checkpoint-timeout <duration>', 'abandon a checkpoint not complete after this long', duration)
    .option('--retain <n>', 'completed checkpoints to keep', positiveInt)
    .option(
      '--restore <checkpoint>',
      "start from 'latest' (the beginning for a job started but never checkpointed), 'latest-or-fresh' (also for a job the storage does not know) or a checkpoint/savepoint id",
      restoreTarget,
    )
    .option('--allow-non-restored-state', 'drop state of operators that are no longer in the job')
    .option(
      '--restart-strategy <strategy>',
      'none, fixed-delay[:attempts[:delay]], exponential-delay, failure-rate[:max[:interval[:delay]]]',
      restartStrategy,
    )
    .option('--job-id <id>', 'the id checkpoints are stored under (default: the job name)')
    .option(
      '--ha <url>',
      'high availability: elect the leading job manager of this job id in this store (redis://..., or a directory shared by the job managers); another job manager for the job id waits as a standby and takes over the run when the leader dies; task managers find the leader there',
    )
    .option(
      '--standby',
      'if another job manager leads this job id, wait as its standby instead of failing (the lease is in the checkpoint storage, or in --ha)',
    )
    .option(
      '--lease-duration <duration>',
      "how long the leader's lease lasts without renewal (renewed every third of it); a standby takes over after it runs out (default 15s)",
      duration,
    )
    .option(
      '--web-port <port>',
      'serve the REST API, Prometheus /metrics and the dashboard on this port (0: any free port; default off)',
      nonNegativeInt,
    )
    .option('--web-host <host>', 'with --web-port: the address to bind (default 127.0.0.1)')
    .option(
      '--web-token <secret>',
      'with --web-port: the token changing calls (cancel, savepoint, stop) need (or TIDEMARK_WEB_TOKEN); ps shows it: prefer --web-token-file; without one, only this host may change the job',
    )
    .option(
      '--web-token-file <file>',
      'with --web-port: read the web token from this file (or TIDEMARK_WEB_TOKEN_FILE)',
    )
    .option(
      '--web-stall-threshold <duration>',
      'with --web-port: a watermark that has not moved this long is reported stalled, with the reason (default 10s)',
      duration,
    )
    .option(
      '--slot-request-timeout <duration>',
      'with --listen: how long a restart that lacks slots (a task manager left) waits for task managers to bring them, before it runs on the slots there are, or fails when there are none (default 5m)',
      duration,
    )
    .action(async (file: string, flags: RunFlags) => {
      checkGraphFlags(flags);
      code = await runCommand(file, flags);
    });
  clusterSecurityOptions(run);
  storageSecretOptions(run);

  const checkpoints = program
    .command('checkpoints')
    .description('inspect and delete stored checkpoints and savepoints');
  const list = checkpoints
    .command('list')
    .description('list stored checkpoints (id, time, size, chunks)')
    .option('--storage <url>', `checkpoint storage (default ${DEFAULT_STORAGE})`)
    .option('--job <id>', 'only this job')
    .option('--json', 'machine-readable output')
    .action(async (flags: StorageCommandFlags & { job?: string; json?: boolean }) => {
      code = await listCheckpoints(flags);
    });
  const show = checkpoints
    .command('show')
    .description('show one checkpoint: operators, parallelism, key groups')
    .argument('<id>', 'checkpoint id', positiveInt)
    .requiredOption('--job <id>', 'the job')
    .option('--storage <url>', `checkpoint storage (default ${DEFAULT_STORAGE})`)
    .option('--json', 'machine-readable output')
    .action(async (id: number, flags: StorageCommandFlags & { job: string; json?: boolean }) => {
      code = await showCheckpoint(id, flags);
    });
  const remove = checkpoints
    .command('delete')
    .description('delete a checkpoint or savepoint')
    .argument('<id>', 'checkpoint id', positiveInt)
    .requiredOption('--job <id>', 'the job')
    .option('--storage <url>', `checkpoint storage (default ${DEFAULT_STORAGE})`)
    .action(async (id: number, flags: StorageCommandFlags & { job: string }) => {
      code = await deleteCheckpoint(id, flags);
    });
  for (const c of [list, show, remove]) storageSecretOptions(c);

  const taskManager = program
    .command('taskmanager')
    .description(
      'offer slots to a job manager (tidemark run --listen) on this host; runs until the job ends, joining whichever job manager leads',
    )
    .option(
      '--job-manager <host:port[,host:port...]>',
      'the job manager to join; several (a leader and its standbys) are tried in turn',
    )
    .option(
      '--ha <url>',
      'find the job manager that leads --job-id in this store (as given to tidemark run --ha)',
    )
    .option('--job-id <id>', 'with --ha: the job whose leading job manager to join')
    .option(
      '--registration-timeout <duration>',
      'give up (exit 1) after looking for a job manager this long, at the start or after losing one (default: never)',
      duration,
    )
    .option('--slots <n>', 'slots (worker threads) of this task manager', positiveInt, 1)
    .option('--token <secret>', 'the shared secret (or TIDEMARK_TOKEN); ps shows it: prefer --token-file')
    .option(
      '--data-host <host>',
      'address other task managers reach this one at (default: as seen by the job manager)',
    )
    .option('--data-port <port>', 'port for connections from other task managers (default: any)', positiveInt)
    .action(
      async (
        flags: ClusterSecurityFlags & {
          jobManager?: string;
          ha?: string;
          jobId?: string;
          registrationTimeout?: number;
          slots: number;
          dataHost?: string;
          dataPort?: number;
          frameTimeout?: number;
        },
      ) => {
        if (flags.jobManager === undefined && flags.ha === undefined)
          throw new UsageError('taskmanager needs --job-manager HOST:PORT or --ha URL --job-id ID');
        if (flags.ha !== undefined && flags.jobId === undefined)
          throw new UsageError('taskmanager --ha needs --job-id: the job whose leading job manager to join');
        if (flags.jobManager !== undefined)
          for (const a of flags.jobManager.split(','))
            if (!/^.+:\d+$/.test(a.trim()))
              throw new UsageError(`--job-manager: '${a.trim()}' is not host:port`);
        const { token, tls } = clusterSecurity(flags);
        const tmLog = log.child(
          { component: 'taskmanager', ...(flags.jobId === undefined ? {} : { job: flags.jobId }) },
          { linePrefix: '[taskmanager] ' },
        );
        const ha = flags.ha === undefined ? undefined : openLeaseStorage(flags.ha);
        if (flags.ha !== undefined && ha?.leases === undefined)
          throw new UsageError(
            `--ha ${flags.ha}: keeps no leader leases (use redis://..., rediss://... or a directory)`,
          );
        try {
          await runTaskManager({
            jobManager: flags.jobManager,
            ...(ha === undefined ? {} : { findJobManager: leaderAddress(ha, flags.jobId!) }),
            registrationTimeoutMs: flags.registrationTimeout,
            slots: flags.slots,
            token,
            tls,
            ...(flags.frameTimeout === undefined ? {} : { frameTimeoutMs: flags.frameTimeout }),
            ...(flags.dataHost === undefined ? {} : { dataHost: flags.dataHost }),
            ...(flags.dataPort === undefined ? {} : { dataPort: flags.dataPort }),
            log: (line, level = 'info') => tmLog[level](line),
          });
        } finally {
          await ha?.close();
        }
      },
    );
  clusterSecurityOptions(taskManager);

  const jobCommand = (c: Command) =>
    c
      .option(
        '--job-manager <host:port>',
        "the job manager's REST address (tidemark run --web-port), or TIDEMARK_JOB_MANAGER",
      )
      .option('--web-token <secret>', 'the web token (or TIDEMARK_WEB_TOKEN)')
      .option('--web-token-file <file>', 'read the web token from this file (or TIDEMARK_WEB_TOKEN_FILE)');
  jobCommand(
    program
      .command('savepoint')
      .description(
        'take a savepoint of a running job: over REST with --job-manager (or TIDEMARK_JOB_MANAGER), else through the control socket of a job started in this directory',
      )
      .argument('<job-id>', 'the job id'),
  ).action(async (jobId: string, flags: JobCommandFlags) => {
    code =
      jobManagerUrl(flags) === undefined
        ? await savepointCommand(jobId)
        : await savepointViaRest(jobId, flags);
  });
  jobCommand(program.command('list').description('list the jobs of a job manager'))
    .option('--json', 'machine-readable output')
    .action(async (flags: JobCommandFlags) => {
      code = await listJobs(flags);
    });
  jobCommand(
    program
      .command('status')
      .description(
        'a running job at a glance: vertices, rates, watermarks and what holds them, backpressure, checkpoints',
      )
      .argument('<job-id>', 'the job id'),
  )
    .option('--json', 'machine-readable output')
    .action(async (jobId: string, flags: JobCommandFlags) => {
      code = await jobStatus(jobId, flags);
    });
  jobCommand(
    program.command('cancel').description('cancel a running job').argument('<job-id>', 'the job id'),
  ).action(async (jobId: string, flags: JobCommandFlags) => {
    code = await cancelJob(jobId, flags);
  });
  jobCommand(
    program
      .command('stop')
      .description('stop a running job with a savepoint (then restore it with tidemark run --restore ID)')
      .argument('<job-id>', 'the job id'),
  )
    .option('--savepoint', 'take a savepoint, then cancel the job')
    .action(async (jobId: string, flags: JobCommandFlags & { savepoint?: boolean }) => {
      code = await stopJob(jobId, flags);
    });

  graphOptions(
    program
      .command('plan')
      .description("print a job's execution graph")
      .argument('<job>', 'path to the job module (.ts or .js)'),
  )
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['text', 'dot', 'json']).default('text'),
    )
    .option('--slots <n>', 'also show which slot runs which subtasks on this many slots', positiveInt)
    .action(async (file: string, flags: GraphFlags & { format: PlanFormat; slots?: number }) => {
      const overrides = graphFlags(flags);
      const loaded = await loadJob(file, 'tidemark plan');
      const env = await buildJob(loaded.definition, { jobName: loaded.name, ...overrides });
      const options = flags.slots === undefined ? {} : { slots: flags.slots };
      process.stdout.write(`${env.getExecutionPlan(flags.format, options)}\n`);
    });

  graphOptions(
    program
      .command('simulate')
      .description(
        'run a job deterministically under seeds (interleavings and timing); prints a digest per seed',
      )
      .argument('<job>', 'path to the job module (.ts or .js)'),
  )
    .option('-s, --seed <n>', 'first seed', nonNegativeInt, 1)
    .option('-n, --seeds <n>', 'number of seeds to run', positiveInt, 1)
    .option('--trace', 'print every scheduling decision')
    .option('--output', "print the job's own output too")
    .action(
      async (
        file: string,
        flags: GraphFlags & { seed: number; seeds: number; trace?: boolean; output?: boolean },
      ) => {
        code = await simulateCommand(file, flags);
      },
    );

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 2;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return 2;
    }
    if (e instanceof UsageError) {
      log.error(e.message);
      return 2;
    }
    log.error(describeErrorChain(e), errorFields(e));
    return 1;
  }
}

/** Runs seeds `seed .. seed + seeds - 1`; prints one line per seed; exit 1 at the first failure. */
async function simulateCommand(
  file: string,
  flags: GraphFlags & { seed: number; seeds: number; trace?: boolean; output?: boolean },
): Promise<number> {
  // NOTE: imported here, not at the top: the simulation is part of the testing toolkit (with
  // fast-check), which no other command needs; `tidemark run` must not load it.
  checkGraphFlags(flags);
  const { simulateJob } = await import('../testing/simulation.js');
  const loaded = await loadJob(file, 'tidemark simulate');
  const digests = new Map<string, number[]>();
  const started = performance.now();
  for (let seed = flags.seed; seed < flags.seed + flags.seeds; seed++) {
    const lines: string[] = [];
    const replay = `tidemark simulate ${file} --seed ${seed}${flags.parallelism === undefined ? '' : ` --parallelism ${flags.parallelism}`}`;
    try {
      const r = await simulateJob(
        loaded.definition,
        {
          seed,
          ...graphFlags(flags),
          trace: flags.trace === true,
          stdout: { writeLine: (l) => lines.push(l) },
        },
        replay,
      );
      if (flags.trace === true) for (const t of r.trace) process.stdout.write(`  ${t}\n`);
      if (flags.output === true) for (const l of lines) process.stdout.write(`${l}\n`);
      const digest = digestOf(lines, r.result.results);
      digests.set(digest, [...(digests.get(digest) ?? []), seed]);
      process.stdout.write(`seed ${seed}: ok, ${r.steps} steps, output digest ${digest}\n`);
    } catch (e) {
      log.error(describeErrorChain(e), errorFields(e));
      return 1;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${flags.seeds} seed(s) in ${seconds.toFixed(2)} s (${(flags.seeds / seconds).toFixed(1)} seeds/s); ${digests.size} distinct output(s)\n`,
  );
  return 0;
}

/**
 * A digest of a run's output that does not depend on the order of lines or results, nor on the
 * key order of JSON objects.
 */
function digestOf(lines: readonly string[], results: ReadonlyMap<string, unknown[]>): string {
  const hash = createHash('sha256');
  for (const l of lines.map(canonicalLine).sort()) hash.update(`${l}\n`);
  for (const [id, values] of [...results].sort(([a], [b]) => a.localeCompare(b)))
    for (const v of values.map(canonicalJson).sort()) hash.update(`${id}:${v}\n`);
  return hash.digest('hex').slice(0, 16);
}

function canonicalLine(line: string): string {
  const m = /^(.*?> )?([[{].*)$/.exec(line);
  if (m === null) return line;
  try {
    return (m[1] ?? '') + canonicalJson(JSON.parse(m[2]!));
  } catch {
    return line;
  }
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v))
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
      );
    return v;
  });
}

/** Refuses `-p` above `--max-parallelism` before any module is loaded ({@link UsageError}). */
function checkGraphFlags(flags: GraphFlags): void {
  if (
    flags.parallelism !== undefined &&
    flags.maxParallelism !== undefined &&
    flags.parallelism > flags.maxParallelism
  )
    throw new UsageError(
      `--parallelism ${flags.parallelism} is greater than --max-parallelism ${flags.maxParallelism}`,
    );
}

function graphFlags(flags: GraphFlags): GraphFlags {
  checkGraphFlags(flags);
  const out: GraphFlags = {};
  if (flags.parallelism !== undefined) out.parallelism = flags.parallelism;
  if (flags.maxParallelism !== undefined) out.maxParallelism = flags.maxParallelism;
  return out;
}
