/**
 * Failover times of job managers and task managers, as processes of the CLI on loopback with
 * checkpoints to Redis every 200 ms (bench/ha-job.ts, parallelism 2 on two task managers of one
 * slot each). Each figure runs from the fault to the moment the job is running again: the first
 * checkpoint completed after the fault (every subtask deployed, restored and through a barrier).
 *
 * - job manager killed (kill -9) while a standby waits (`tidemark run --ha`): the standby, on the
 *   same host, sees that the leader's process is gone and takes its lease at once;
 * - job manager gone without a word (SIGSTOP, as a host that vanished): the standby waits out the
 *   lease (`--lease MS`, default 3000);
 * - task manager killed (kill -9), a replacement started at once (as a supervisor would): the
 *   restart waits for its slot.
 *
 *   node --import ./bench/register.mjs bench/ha.ts [--repeat N] [--lease MS] [--json | --result]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { benchRedis } from './nexmark/redis.js';

const BIN = fileURLToPath(new URL('../bin/tidemark.js', import.meta.url));
const JOB = fileURLToPath(new URL('./ha-job.ts', import.meta.url));
const TOKEN = 'bench-ha-token';
const JOB_ID = 'ha-bench';
const CHECKPOINT_MS = 200;

/** One failover: milliseconds from the fault to each step (undefined: not logged). */
export interface Failover {
  /** The standby took the lease (job manager failovers), or the job manager restarted (task manager). */
  tookOverMs: number | undefined;
  /** The replacement task manager joined (task manager failovers). */
  joinedMs?: number | undefined;
  /** Every slot restored its state from the latest checkpoint (logged by the job manager). */
  restoredMs: number | undefined;
  /** The first checkpoint completed after the fault: the job runs again. */
  runningMs: number;
}

/** Figures of the failover benchmark. */
export interface HaBenchResult {
  leaseMs: number;
  checkpointIntervalMs: number;
  jobManagerKilled: Failover[];
  jobManagerGone: Failover[];
  taskManagerKilled: Failover[];
}

interface Proc {
  child: ChildProcess;
  /** When each line of standard error came. */
  lines: { at: number; text: string }[];
  exit: Promise<number | null>;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function cli(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, TIDEMARK_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Proc['lines'] = [];
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    const at = performance.now();
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const text of parts) lines.push({ at, text });
  });
  return { child, lines, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

/** When a line matching `pattern` came after `since`, or undefined. */
function seen(p: Proc, pattern: RegExp, since: number): number | undefined {
  return p.lines.find((l) => l.at >= since && pattern.test(l.text))?.at;
}

async function until<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 120_000,
) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`bench/ha.ts: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A job manager (leader or standby) and its arguments. */
function jobManager(listen: string, storage: string, extra: string[]): string[] {
  return [
    'run',
    JOB,
    '-p',
    '2',
    '--job-id',
    JOB_ID,
    '--listen',
    listen,
    '--task-managers',
    '2',
    '--checkpoint-interval',
    `${CHECKPOINT_MS}ms`,
    '--checkpoint-storage',
    storage,
    '--restart-strategy',
    'fixed-delay:10:1ms',
    '--heartbeat-interval',
    '500ms',
    '--heartbeat-timeout',
    '3s',
    ...extra,
  ];
}

class Run {
  private readonly procs: Proc[] = [];
  private readonly client: Redis;
  constructor(
    private readonly url: string,
    readonly prefix: string,
  ) {
    this.client = new Redis(url);
  }
  get storage(): string {
    return `${this.url}/?prefix=${this.prefix}`;
  }
  start(args: string[]): Proc {
    const p = cli(args);
    this.procs.push(p);
    return p;
  }
  async latest(): Promise<number> {
    return Number((await this.client.get(`${this.prefix}:{${JOB_ID}}:latest`)) ?? 0);
  }
  /** Waits for a few checkpoints: the job runs. */
  async running(): Promise<number> {
    return until(async () => {
      const n = await this.latest();
      return n >= 5 ? n : undefined;
    }, 'the job to run (five checkpoints)');
  }
  /** When the first checkpoint after `after` completed (polled every 5 ms). */
  async nextCheckpoint(after: number): Promise<number> {
    return until(
      async () => ((await this.latest()) > after ? performance.now() : undefined),
      'a checkpoint after the fault',
    );
  }
  /** What the processes said last, for an error. */
  tail(): string {
    return this.procs
      .map(
        (p, i) =>
          `process ${i}:\n${p.lines
            .slice(-8)
            .map((l) => `  ${l.text}`)
            .join('\n')}`,
      )
      .join('\n');
  }
  async close(): Promise<void> {
    for (const p of this.procs) p.child.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exit));
    const keys = await this.client.keys(`${this.prefix}:*`);
    if (keys.length > 0) await this.client.del(...keys);
    this.client.disconnect();
  }
}

/** A leader and a standby job manager, two task managers that find the leader in Redis. */
async function jobManagerFailover(url: string, leaseMs: number, fault: 'kill' | 'stop'): Promise<Failover> {
  const run = new Run(url, `ha-bench-${process.pid}-${Date.now()}`);
  try {
    const ha = ['--ha', run.storage, '--lease-duration', `${leaseMs}ms`];
    const leader = run.start(jobManager(`127.0.0.1:${await freePort()}`, run.storage, ha));
    await until(() => seen(leader, /waiting for 2 task manager/, 0), 'the leader to listen');
    const standby = run.start(jobManager(`127.0.0.1:${await freePort()}`, run.storage, ha));
    await until(() => seen(standby, /waiting as its standby/, 0), 'the standby to wait');
    for (let i = 0; i < 2; i++) run.start(['taskmanager', '--ha', run.storage, '--job-id', JOB_ID]);
    const before = await run.running();
    const t0 = performance.now();
    leader.child.kill(fault === 'kill' ? 'SIGKILL' : 'SIGSTOP');
    const runningAt = await run.nextCheckpoint(await run.latest().then((n) => Math.max(n, before)));
    const ms = (t: number | undefined) => (t === undefined ? undefined : t - t0);
    return {
      tookOverMs: ms(seen(standby, /leading job/, t0)),
      restoredMs: ms(seen(standby, /restored from checkpoint/, t0)),
      runningMs: runningAt - t0,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${run.tail()}`);
  } finally {
    await run.close();
  }
}

/** A job manager and two task managers; one is killed and a replacement started at once. */
async function taskManagerFailover(url: string): Promise<Failover> {
  const run = new Run(url, `ha-bench-${process.pid}-${Date.now()}`);
  try {
    const listen = `127.0.0.1:${await freePort()}`;
    const jm = run.start(jobManager(listen, run.storage, ['--slot-request-timeout', '2m']));
    const tms = [0, 1].map(() => run.start(['taskmanager', '--job-manager', listen]));
    const before = await run.running();
    const victim = await until(
      () => tms.find((t) => t.lines.some((l) => l.text.includes('deployed slots 0 '))),
      'the task manager of slot 0',
    );
    const t0 = performance.now();
    victim.child.kill('SIGKILL');
    run.start(['taskmanager', '--job-manager', listen]);
    const runningAt = await run.nextCheckpoint(await run.latest().then((n) => Math.max(n, before)));
    const ms = (t: number | undefined) => (t === undefined ? undefined : t - t0);
    return {
      tookOverMs: ms(seen(jm, /restarting \(attempt 1\)/, t0)),
      joinedMs: ms(seen(jm, /task manager 3 .* joined/, t0)),
      restoredMs: ms(seen(jm, /restored from checkpoint/, t0)),
      runningMs: runningAt - t0,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${run.tail()}`);
  } finally {
    await run.close();
  }
}

/** Runs every failover `repeat` times (one after the other, alone). */
export async function runHaBench(repeat: number, leaseMs: number): Promise<HaBenchResult | string> {
  const redis = await benchRedis();
  if (typeof redis === 'string') return redis;
  try {
    const out: HaBenchResult = {
      leaseMs,
      checkpointIntervalMs: CHECKPOINT_MS,
      jobManagerKilled: [],
      jobManagerGone: [],
      taskManagerKilled: [],
    };
    for (let i = 0; i < repeat; i++) {
      out.jobManagerKilled.push(await jobManagerFailover(redis.url, leaseMs, 'kill'));
      out.jobManagerGone.push(await jobManagerFailover(redis.url, leaseMs, 'stop'));
      out.taskManagerKilled.push(await taskManagerFailover(redis.url));
    }
    return out;
  } finally {
    await redis.stop();
  }
}

const sec = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

/** Median and range of a figure over the runs. */
function spread(runs: Failover[], pick: (f: Failover) => number | undefined): string {
  const xs = runs
    .map(pick)
    .filter((x): x is number => x !== undefined)
    .sort((a, b) => a - b);
  if (xs.length === 0) return '-';
  const median = xs[Math.floor(xs.length / 2)]!;
  return xs.length === 1 ? sec(median) : `${sec(median)} (${sec(xs[0])}–${sec(xs[xs.length - 1])})`;
}

/** The report lines of a result. */
export function formatHaBench(r: HaBenchResult | string): string[] {
  if (typeof r === 'string') return [`failover: ${r}`];
  const n = r.jobManagerKilled.length;
  return [
    `failover on loopback (a checkpoint every ${r.checkpointIntervalMs} ms to Redis, lease ${r.leaseMs} ms; from the fault to the first checkpoint after it, median${n > 1 ? ' (range)' : ''} of ${n}):`,
    `  job manager killed (kill -9), standby on the same host: running again after ${spread(r.jobManagerKilled, (f) => f.runningMs)} (lease taken ${spread(r.jobManagerKilled, (f) => f.tookOverMs)}, restored ${spread(r.jobManagerKilled, (f) => f.restoredMs)})`,
    `  job manager gone silent (SIGSTOP), the standby waits out the lease: running again after ${spread(r.jobManagerGone, (f) => f.runningMs)} (lease taken ${spread(r.jobManagerGone, (f) => f.tookOverMs)}, restored ${spread(r.jobManagerGone, (f) => f.restoredMs)})`,
    `  task manager killed (kill -9), a replacement started at once: running again after ${spread(r.taskManagerKilled, (f) => f.runningMs)} (replacement joined ${spread(r.taskManagerKilled, (f) => f.joinedMs)}, restored ${spread(r.taskManagerKilled, (f) => f.restoredMs)})`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const result = await runHaBench(Number(arg('--repeat') ?? 3), Number(arg('--lease') ?? 3000));
  // --result: one line for bench/run.ts, which runs this in a process of its own.
  if (process.argv.includes('--result')) process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  else if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else for (const line of formatHaBench(result)) console.log(line);
}
