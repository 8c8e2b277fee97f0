/**
 * Task managers as separate processes on loopback: a Nexmark query on two task managers of one
 * slot each (parallelism 2) against one task manager of one slot (parallelism 1), events per
 * second from the moment every slot had loaded the job to the moment every subtask finished (each
 * side's start-up left out), alternating the two setups. This process is the job manager.
 *
 *   node --expose-gc --import ./bench/register.mjs bench/hosts.ts [--queries q5,q8] [--events N] [--repeat N] [--json]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { buildJob, type JobDefinition, type RunnerEvent } from 'tidemark';
import { TaskManagerPool } from '../runtime/distributed/task-manager.js';

const BIN = fileURLToPath(new URL('../bin/tidemark.js', import.meta.url));
const SLOT_JOB = fileURLToPath(new URL('./nexmark/slot-job.ts', import.meta.url));
const TOKEN = 'bench-hosts-token';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Events per second of one run of `query` on `managers` task managers of one slot each. */
async function runOnce(query: string, events: number, managers: number): Promise<number> {
  process.env.NEXMARK_BENCH_QUERY = query;
  process.env.NEXMARK_EVENTS = String(events);
  const port = await freePort();
  const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, TOKEN, managers, { timeoutMs: 60_000 });
  const children: ChildProcess[] = [];
  for (let i = 0; i < managers; i++)
    children.push(
      spawn(process.execPath, [BIN, 'taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '1'], {
        env: { ...process.env, TIDEMARK_TOKEN: TOKEN },
        stdio: 'ignore',
      }),
    );
  const pool = await listening;
  try {
    const mod = (await import(SLOT_JOB)) as { default: JobDefinition };
    const overrides = { parallelism: managers, jobName: `nexmark-${query}` };
    const env = await buildJob(mod.default, overrides);
    let runningAt: number | undefined;
    let finishedAt: number | undefined;
    await env.execute({
      jobId: `bench-hosts-${process.pid}`,
      distributed: { slots: managers, jobPath: SLOT_JOB, overrides, provider: pool },
      onEvent: (e: RunnerEvent) => {
        if (e.type === 'running') runningAt ??= performance.now();
        if (e.type === 'finished') finishedAt ??= performance.now();
      },
    });
    return (events * 1000) / (finishedAt! - runningAt!);
  } finally {
    pool.close();
    for (const c of children) c.kill();
  }
}

/** Figures of the task-manager benchmark: events/s on one and on two task managers, per query. */
export interface HostsBenchResult {
  events: number;
  queries: { query: string; one: number[]; two: number[]; ratio: number }[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs the benchmark: `repeat` alternated runs per setup and query. */
export async function runHostsBench(
  queries: string[],
  events: number,
  repeat: number,
): Promise<HostsBenchResult> {
  const out: HostsBenchResult = { events, queries: [] };
  for (const query of queries) {
    const one: number[] = [];
    const two: number[] = [];
    for (let i = 0; i < repeat; i++) {
      one.push(await runOnce(query, events, 1));
      two.push(await runOnce(query, events, 2));
    }
    out.queries.push({ query, one, two, ratio: median(two) / median(one) });
  }
  return out;
}

/** The report lines of a result. */
export function formatHostsBench(r: HostsBenchResult): string[] {
  const k = (x: number) => `${Math.round(x / 1000).toLocaleString('en')}k`;
  return [
    `task managers on loopback (${r.events.toLocaleString('en')} events, start-up left out, medians of alternated runs; target 1.4x):`,
    ...r.queries.map(
      (q) =>
        `  ${q.query}: 1 task manager ${k(median(q.one))} ev/s, 2 task managers ${k(median(q.two))} ev/s: ${q.ratio.toFixed(2)}x`,
    ),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const result = await runHostsBench(
    (arg('--queries') ?? 'q5,q8').split(','),
    Number(arg('--events') ?? 6_000_000),
    Number(arg('--repeat') ?? 3),
  );
  // --result: one line for bench/run.ts, which runs this in a process of its own.
  if (process.argv.includes('--result')) process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  else if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else for (const line of formatHostsBench(result)) console.log(line);
}
