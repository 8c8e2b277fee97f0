/** The `tidemark` command line. `main` returns the exit code. */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { describeErrorChain } from '../../state/errors.js';
import type { PlanFormat } from '../graph/plan.js';
import { buildJob } from '../job.js';
import type { JobMetricsSnapshot } from '../metrics.js';
import { simulateJob } from '../testing/simulation.js';
import { loadJob, UsageError } from './load-job.js';

/** The package version (from source, ../../package.json; from dist/, ../../../package.json). */
function version(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version: string };
    if (pkg.name === 'tidemark') return pkg.version;
  }
  return 'unknown';
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('must be a positive integer.');
  return n;
}

interface GraphFlags {
  parallelism?: number;
  maxParallelism?: number;
}

interface RunFlags extends GraphFlags {
  progress?: boolean;
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
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
    });

  const graphOptions = (c: Command) =>
    c
      .option('-p, --parallelism <n>', 'default parallelism of operators', positiveInt)
      .option('--max-parallelism <n>', 'maximum parallelism (number of key groups)', positiveInt);

  graphOptions(
    program
      .command('run')
      .description('run a job module')
      .argument('<job>', 'path to the job module (.ts or .js)'),
  )
    .option('--progress', 'print a live progress line to standard error')
    .action(async (file: string, flags: RunFlags) => {
      code = await runJob(file, flags);
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
    .action(async (file: string, flags: GraphFlags & { format: PlanFormat }) => {
      const loaded = await loadJob(file);
      const env = await buildJob(loaded.definition, { jobName: loaded.name, ...graphFlags(flags) });
      process.stdout.write(`${env.getExecutionPlan(flags.format)}\n`);
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
      process.stderr.write(`tidemark: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`tidemark: ${describeErrorChain(e)}\n`);
    return 1;
  }
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('must be a non-negative integer.');
  return n;
}

/** Runs seeds `seed .. seed + seeds - 1`; prints one line per seed; exit 1 at the first failure. */
async function simulateCommand(
  file: string,
  flags: GraphFlags & { seed: number; seeds: number; trace?: boolean; output?: boolean },
): Promise<number> {
  const loaded = await loadJob(file);
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
      process.stderr.write(`tidemark: ${describeErrorChain(e)}\n`);
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

function graphFlags(flags: GraphFlags): GraphFlags {
  const out: GraphFlags = {};
  if (flags.parallelism !== undefined) out.parallelism = flags.parallelism;
  if (flags.maxParallelism !== undefined) out.maxParallelism = flags.maxParallelism;
  return out;
}

async function runJob(file: string, flags: RunFlags): Promise<number> {
  const loaded = await loadJob(file);
  const env = await buildJob(loaded.definition, { jobName: loaded.name, ...graphFlags(flags) });
  const client = env.executeAsync();
  const onSignal = () => client.cancel();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const progress =
    flags.progress === true ? startProgress(client.jobName, () => client.metrics()) : undefined;
  try {
    const result = await client.result;
    progress?.stop(result.metrics);
    return result.status === 'FINISHED' ? 0 : 130;
  } catch (e) {
    progress?.stop(undefined);
    process.stderr.write(`tidemark: ${describeErrorChain(e)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Prints a progress line every second (rewritten in place on a terminal). */
function startProgress(
  jobName: string,
  read: () => JobMetricsSnapshot,
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
    return `[${jobName}] ${((now - start) / 1000).toFixed(1)} s | events ${fmt.format(m.sourceRecords)} (${fmt.format(Math.round(rate))}/s${final ? ' average' : ''}) | records out ${fmt.format(m.sinkRecords)}`;
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
