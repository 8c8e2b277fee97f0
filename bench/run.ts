/**
 * `npm run bench`: the Nexmark benchmark (shared/NEXMARK.md). For every query: tidemark's
 * throughput in one slot, per CPU-core-second (generator included), the ratio to a hand-written
 * loop measured in the same process, peak memory, throughput with checkpoints (in memory, and to
 * Redis when one is available), on 2 slots (worker threads), and window emit latency at a fixed
 * rate for the windowed queries.
 *
 *   node --expose-gc --import ./bench/register.mjs bench/run.ts [--quick] [--json FILE]
 *     [--events N] [--repeat N] [--queries q0,q5] [--checkpoint-interval MS] [--no-redis]
 *     [--no-latency] [--latency-ms MS] [--no-checkpoint-bench] [--no-channel-bench]
 *     [--no-hosts-bench] [--no-ha-bench] [--state-backend heap|lmdb]
 *
 * Each query runs in a fresh process (bench/nexmark/worker.ts); `--quick` runs everything in one
 * process with small counts (a few seconds in all; its figures are only a smoke test).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ChannelBenchResult, formatChannelBench } from './channels.js';
import { type CheckpointBenchResult, formatCheckpointBench } from './checkpoints.js';
import { formatHaBench, type HaBenchResult } from './ha.js';
import { formatHostsBench, type HostsBenchResult } from './hosts.js';
import type { LatencyFigures, Measurement } from './nexmark/harness.js';
import { QUERY_NAMES } from './nexmark/names.js';
import { benchRedis } from './nexmark/redis.js';
import type { QueryResult, Unavailable, WorkerResult, WorkerSpec } from './nexmark/worker.js';

function parseOptions() {
  return parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      events: { type: 'string' },
      repeat: { type: 'string' },
      queries: { type: 'string' },
      'checkpoint-interval': { type: 'string' },
      'no-redis': { type: 'boolean', default: false },
      'no-latency': { type: 'boolean', default: false },
      'latency-ms': { type: 'string' },
      'no-checkpoint-bench': { type: 'boolean', default: false },
      'no-channel-bench': { type: 'boolean', default: false },
      'no-hosts-bench': { type: 'boolean', default: false },
      'no-ha-bench': { type: 'boolean', default: false },
      'state-backend': { type: 'string' },
    },
    strict: true,
  }).values;
}

let args: ReturnType<typeof parseOptions>;
try {
  args = parseOptions();
} catch (e) {
  console.error(`npm run bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n > 0)) {
    console.error(`--${name} needs a positive whole number, got '${raw}'`);
    process.exit(2);
  }
  return n;
}

// --state-backend: the keyed-state backend of every job the benchmark runs. NOTE: set as
// TIDEMARK_STATE_BACKEND, the default of jobs that set none: the benchmark's worker processes
// inherit it, and their slots get it with the job graph.
if (args['state-backend'] !== undefined) {
  if (args['state-backend'] !== 'heap' && args['state-backend'] !== 'lmdb') {
    console.error(`--state-backend is heap or lmdb, got '${args['state-backend']}'`);
    process.exit(2);
  }
  process.env.TIDEMARK_STATE_BACKEND = args['state-backend'];
}

const quick = args.quick === true;
const queryNames =
  args.queries === undefined ? [...QUERY_NAMES] : args.queries.split(',').map((s) => s.trim());
for (const name of queryNames)
  if (!(QUERY_NAMES as readonly string[]).includes(name)) {
    console.error(`unknown query '${name}' (known: ${QUERY_NAMES.join(', ')})`);
    process.exit(2);
  }
const events = positive('events', args.events, quick ? 20_000 : 5_000_000);
const base = {
  events,
  repeat: positive('repeat', args.repeat, quick ? 1 : 3),
  warmupEvents: quick ? 0 : Math.min(events, 200_000),
  checkpointIntervalMs: positive('checkpoint-interval', args['checkpoint-interval'], quick ? 50 : 1_000),
  runTimeoutMs: quick ? 60_000 : 180_000,
  latency: args['no-latency']
    ? undefined
    : { share: 0.6, durationMs: positive('latency-ms', args['latency-ms'], quick ? 300 : 10_000) },
};

const WORKER = fileURLToPath(new URL('./nexmark/worker.ts', import.meta.url));
const REGISTER = fileURLToPath(new URL('./register.mjs', import.meta.url));

const CHECKPOINTS = fileURLToPath(new URL('./checkpoints.ts', import.meta.url));
const CHANNELS = fileURLToPath(new URL('./channels.ts', import.meta.url));
const HOSTS = fileURLToPath(new URL('./hosts.ts', import.meta.url));
const HA = fileURLToPath(new URL('./ha.ts', import.meta.url));

/** Runs one worker process; resolves with what it printed on its RESULT line. */
function runWorker(spec: WorkerSpec): Promise<WorkerResult> {
  return runScript(WORKER, [JSON.stringify(spec)], spec.queries.join(', '));
}

/** Runs a benchmark script in a process of its own; resolves with its RESULT line. */
function runScript<T>(script: string, argv: string[], what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', REGISTER, script, ...argv], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || line === undefined)
        reject(new Error(`benchmark worker for ${what} failed (exit code ${code}):\n${out}`));
      else resolve(JSON.parse(line.slice('RESULT '.length)) as T);
    });
  });
}

const isUnavailable = (x: unknown): x is Unavailable =>
  typeof x === 'object' && x !== null && 'unavailable' in x;
const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
const kps = (n: number) => `${thousands(n / 1000)}k`;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)}`;
const pct = (n: number) => `${(n * 100).toFixed(0)} %`;
/** Milliseconds, or a dash for no value (NaN becomes null in JSON). */
const ms = (n: number | null) => (n === null || Number.isNaN(n) ? '-' : n.toFixed(0));

function checkpointCell(m: Measurement | Unavailable, without: Measurement): string {
  if (isUnavailable(m)) return m.unavailable.startsWith('skipped') ? 'skipped' : 'failed';
  const n = m.checkpoints?.completed ?? 0;
  // NOTE: per CPU-second: a single run each, so wall time would carry whatever else the machine did.
  return `${kps(m.eventsPerCoreSecond)} (${pct(m.eventsPerCoreSecond / without.eventsPerCoreSecond)}, ${n} cp)`;
}

/** Events/s on 2 slots and its multiple of one slot: whole run, and after the slots started. */
function twoSlotCells(r: QueryResult): [string, string] {
  const two = r.twoSlots;
  if (isUnavailable(two)) return ['failed', 'failed'];
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  const after = two.eventsPerSecondAfterStartup;
  const oneAfter = r.tidemark.eventsPerSecondAfterStartup ?? r.tidemark.eventsPerSecond;
  return [
    `${kps(two.eventsPerSecond)} (${x(two.eventsPerSecond, r.tidemark.eventsPerSecond)})`,
    after === undefined
      ? '-'
      : `${kps(after)} (${x(after, oneAfter)}, ${((two.startupMs ?? 0) / 1000).toFixed(1)} s start-up)`,
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_h, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

async function main(): Promise<number> {
  const redis = args['no-redis'] ? 'skipped: --no-redis' : await benchRedis();
  const redisSpec: WorkerSpec['redis'] = typeof redis === 'string' ? { skipped: redis } : { url: redis.url };
  const started = Date.now();
  let generator: Measurement | undefined;
  const results: QueryResult[] = [];
  const failed: { query: string; error: string }[] = [];
  try {
    if (quick) {
      const r = await runWorker({ ...base, queries: queryNames, generator: true, redis: redisSpec });
      generator = r.generator;
      results.push(...r.queries);
    } else {
      generator = (await runWorker({ ...base, queries: [], generator: true, redis: redisSpec })).generator;
      for (const name of queryNames) {
        process.stderr.write(`bench: ${name} ...\n`);
        try {
          results.push(
            ...(await runWorker({ ...base, queries: [name], generator: false, redis: redisSpec })).queries,
          );
        } catch (e) {
          // One query failing (or stalling past its bound) does not lose the others' figures.
          const error = e instanceof Error ? e.message : String(e);
          process.stderr.write(`bench: ${name} failed: ${error}\n`);
          failed.push({ query: name, error });
        }
      }
    }
  } finally {
    if (typeof redis !== 'string') await redis.stop();
  }
  // The checkpoint benchmark starts its own Redis (or uses TIDEMARK_REDIS_URL).
  let checkpointBench: CheckpointBenchResult | string | undefined;
  if (!args['no-checkpoint-bench'] && !args['no-redis']) {
    if (!quick) process.stderr.write('bench: checkpoints ...\n');
    // NOTE: a checkpoint every 20 ms in the quick run, whose 200 000 events take a few hundred ms
    // (at 50 ms a fast run once ended before its first checkpoint).
    const size = quick
      ? ['--keys', '20000', '--events', '200000', '--interval', '20', '--pairs', '1', '--quiet']
      : [];
    try {
      checkpointBench = await runScript<CheckpointBenchResult | string>(
        CHECKPOINTS,
        [...size, '--result'],
        'checkpoints',
      );
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      failed.push({ query: 'checkpoints', error });
    }
  }

  // One channel between two threads and between two processes (bench/channels.ts).
  let channelBench: ChannelBenchResult | undefined;
  if (!args['no-channel-bench']) {
    if (!quick) process.stderr.write('bench: channels ...\n');
    const size = quick ? ['--records', '100000', '--repeat', '1'] : ['--records', '2000000', '--repeat', '3'];
    try {
      channelBench = await runScript<ChannelBenchResult>(CHANNELS, [...size, '--result'], 'channels');
    } catch (e) {
      failed.push({ query: 'channels', error: e instanceof Error ? e.message : String(e) });
    }
  }
  // q5 and q8 on two task-manager processes against one (bench/hosts.ts).
  let hostsBench: HostsBenchResult | undefined;
  if (!args['no-hosts-bench']) {
    if (!quick) process.stderr.write('bench: task managers ...\n');
    const size = quick
      ? ['--queries', 'q5', '--events', '100000', '--repeat', '1']
      : ['--queries', 'q5,q8', '--events', String(Math.max(events, 6_000_000)), '--repeat', '3'];
    try {
      hostsBench = await runScript<HostsBenchResult>(HOSTS, [...size, '--result'], 'task managers');
    } catch (e) {
      failed.push({ query: 'task managers', error: e instanceof Error ? e.message : String(e) });
    }
  }

  // Failover of job managers and task managers (bench/ha.ts; its own Redis, or TIDEMARK_REDIS_URL).
  let haBench: HaBenchResult | string | undefined;
  if (!args['no-ha-bench'] && !args['no-redis']) {
    if (!quick) process.stderr.write('bench: failover ...\n');
    const size = quick ? ['--repeat', '1', '--lease', '2000'] : ['--repeat', '3', '--lease', '3000'];
    try {
      haBench = await runScript<HaBenchResult | string>(HA, [...size, '--result'], 'failover');
    } catch (e) {
      failed.push({ query: 'failover', error: e instanceof Error ? e.message : String(e) });
    }
  }

  const header = [
    'query',
    'loop ev/s',
    'tidemark ev/s',
    'ratio',
    'ev/core-s',
    'ratio/core',
    'heap MiB',
    'RSS MiB',
    'ckpt memory',
    'ckpt Redis',
    '2 slots',
    '2 slots after start-up',
    'same result',
  ];
  const rows = results.map((r) => [
    r.query,
    kps(r.baseline.eventsPerSecond),
    kps(r.tidemark.eventsPerSecond),
    pct(r.ratio),
    kps(r.tidemark.eventsPerCoreSecond),
    pct(r.ratioPerCore),
    mib(r.tidemark.heapPeakBytes),
    mib(r.tidemark.rssPeakBytes),
    checkpointCell(r.checkpointsMemory, r.tidemark),
    checkpointCell(r.checkpointsRedis, r.tidemark),
    ...twoSlotCells(r),
    r.resultsMatch === null ? '(wall clock)' : r.resultsMatch ? 'yes' : 'NO',
  ]);
  const cpu = cpus();
  console.log(
    `Nexmark on tidemark: ${thousands(events)} events per run, ${base.repeat} run(s) each (median), one slot; ` +
      `${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'}, Node ${process.versions.node}${quick ? ' (quick mode: smoke-test figures)' : ''}`,
  );
  if (generator !== undefined)
    console.log(
      `Generator alone: ${kps(generator.eventsPerSecond)} events/s (${kps(generator.eventsPerCoreSecond)} per core-second)`,
    );
  console.log();
  console.log(table([header, ...rows]));
  const latencies = results.filter(
    (r): r is QueryResult & { latency: LatencyFigures } =>
      r.latency !== undefined && !isUnavailable(r.latency),
  );
  if (latencies.length > 0) {
    console.log();
    console.log(
      table([
        ['query', 'rate ev/s', 'achieved', 'samples', 'p50 ms', 'p99 ms', 'max ms', 'of which 4 s bound'],
        ...latencies.map((r) => [
          r.query,
          kps(r.latency.ratePerSecond),
          kps(r.latency.achievedPerSecond),
          String(r.latency.samples),
          ms(r.latency.p50Ms),
          ms(r.latency.p99Ms),
          ms(r.latency.maxMs),
          ms(r.latency.watermarkBoundMs),
        ]),
      ]),
    );
  }
  for (const r of results) {
    if (r.recovery === undefined) continue;
    console.log();
    if (isUnavailable(r.recovery)) console.log(`${r.query} recovery: ${r.recovery.unavailable}`);
    else {
      const x = r.recovery;
      console.log(
        `${r.query} recovery from a killed worker (2 slots, a checkpoint every ${base.checkpointIntervalMs} ms to ${x.storage}): restarted in ${ms(x.restartMs)} ms, output caught up ${ms(x.caughtUpMs)} ms after the kill (${kps(x.eventsAtKill - x.eventsAtRestoredCheckpoint)} events replayed from checkpoint ${x.restoredCheckpoint}; counts to about ${x.resolutionMs} ms)`,
      );
    }
  }
  const redisNote = typeof redis === 'string' ? `Redis ${redis}` : `Redis: ${redis.source}`;
  console.log();
  console.log(
    [
      'ratio: tidemark events/s ÷ the hand-written loop (bench/nexmark/baselines.ts) in the same process; ratio/core: the same per CPU-second (user + sys, GC threads included).',
      `ckpt: events per core-second with a checkpoint every ${base.checkpointIntervalMs} ms (share of the run without; completed checkpoints). ${redisNote}.`,
      '2 slots: events/s at parallelism 2 on two worker threads (as `tidemark run --slots 2`), and its multiple of one slot; over the whole run, and from the moment every slot had loaded the job (its start-up time given).',
      'latency: wall-clock emit time − window end mapped to wall time, at 60 % of the query’s measured rate (see measureLatency); it includes the watermarks’ 4 s out-of-orderness bound (last column) and their 200 ms period.',
    ].join('\n'),
  );

  if (checkpointBench !== undefined) {
    console.log();
    for (const line of formatCheckpointBench(checkpointBench)) console.log(line);
  }
  if (channelBench !== undefined) {
    console.log();
    for (const line of formatChannelBench(channelBench)) console.log(line);
  }
  if (hostsBench !== undefined) {
    console.log();
    for (const line of formatHostsBench(hostsBench)) console.log(line);
  }
  if (haBench !== undefined) {
    console.log();
    for (const line of formatHaBench(haBench)) console.log(line);
  }

  if (args.json !== undefined) {
    const report = {
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      command: `npm run bench --${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
      quick,
      machine: {
        cpus: cpu.length,
        model: cpu[0]?.model.trim(),
        node: process.versions.node,
        platform: process.platform,
      },
      settings: { ...base, redis: typeof redis === 'string' ? redis : redis.source },
      generator,
      queries: results,
      checkpoints: checkpointBench,
      channels: channelBench,
      taskManagers: hostsBench,
      failover: haBench,
      failed,
    };
    writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  for (const f of failed) console.log(`${f.query}: FAILED (${f.error.split('\n')[0]})`);
  return failed.length > 0 || results.some((r) => r.resultsMatch === false) ? 1 : 0;
}

process.exitCode = await main();
