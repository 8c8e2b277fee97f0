// `npm run bench -- --quick` as a user runs it: a table and a JSON report with every query, both
// sides computing the same results, checkpoint runs in memory and to Redis, and latency figures.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, inject, test } from 'vitest';
import type { Measurement } from '../../bench/nexmark/harness.js';
import { QUERY_NAMES } from '../../bench/nexmark/names.js';
import type { QueryResult, Unavailable } from '../../bench/nexmark/worker.js';
import { ROOT } from '../helpers/cli.js';

interface Report {
  quick: boolean;
  generator: Measurement;
  queries: QueryResult[];
  checkpoints: unknown;
}

function npmRunBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'bench', '--', ...args], {
      cwd: ROOT,
      // The run's shared Redis, rather than a server of the benchmark's own.
      env: { ...process.env, TIDEMARK_REDIS_URL: inject('redisUrl') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const measured = (m: Measurement | Unavailable): m is Measurement => !('unavailable' in m);

test('npm run bench -- --quick --json FILE prints a table and writes JSON with every query', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
  try {
    const file = join(dir, 'bench.json');
    const r = await npmRunBench(['--quick', '--json', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(
      lines.some((l) =>
        /^\| query +\| +loop ev\/s .*\| +2 slots \| +2 slots after start-up \| +same result \|$/.test(l),
      ),
    ).toBe(true);
    for (const q of QUERY_NAMES)
      expect(lines.filter((l) => l.startsWith(`| ${q} `)).length).toBeGreaterThanOrEqual(1);

    const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
    expect(report.quick).toBe(true);
    expect(report.generator.eventsPerSecond).toBeGreaterThan(0);
    expect(report.queries.map((q) => q.query)).toEqual([...QUERY_NAMES]);
    for (const q of report.queries) {
      expect(q.tidemark.eventsPerSecond).toBeGreaterThan(0);
      expect(q.tidemark.eventsPerCoreSecond).toBeGreaterThan(0);
      expect(q.baseline.eventsPerSecond).toBeGreaterThan(0);
      expect(q.ratio).toBeGreaterThan(0);
      expect(q.tidemark.heapPeakBytes).toBeGreaterThan(0);
      // The loop and tidemark computed the same results (q12's depend on the wall clock).
      expect(q.resultsMatch).toBe(q.query === 'q12' ? null : true);
      if (q.query !== 'q12') expect(q.tidemark.records).toBe(q.baseline.records);
      for (const cp of [q.checkpointsMemory, q.checkpointsRedis]) {
        expect(measured(cp)).toBe(true);
        if (measured(cp)) expect(cp.checkpoints?.completed).toBeGreaterThanOrEqual(0);
      }
      // On two worker threads: figures of the whole run and from when both slots had the job.
      expect(measured(q.twoSlots)).toBe(true);
      if (measured(q.twoSlots)) {
        expect(q.twoSlots.eventsPerSecond).toBeGreaterThan(0);
        expect(q.twoSlots.startupMs).toBeGreaterThan(0);
        expect(q.twoSlots.eventsPerSecondAfterStartup).toBeGreaterThan(q.twoSlots.eventsPerSecond);
      }
      if (q.query === 'q5' || q.query === 'q7')
        expect(q.latency).toMatchObject({ samples: expect.any(Number) });
      else expect(q.latency).toBeUndefined();
      // q5: a worker thread killed after two checkpoints; the job restarted from the latest one.
      if (q.query === 'q5') {
        expect(q.recovery).toMatchObject({ storage: 'redis', restoredCheckpoint: expect.any(Number) });
        if (q.recovery !== undefined && !('unavailable' in q.recovery)) {
          expect(q.recovery.restartMs).toBeGreaterThan(0);
          expect(q.recovery.caughtUpMs).toBeGreaterThanOrEqual(q.recovery.restartMs);
        }
      } else expect(q.recovery).toBeUndefined();
    }
    expect(lines.some((l) => l.startsWith('q5 recovery from a killed worker'))).toBe(true);
    // Checkpoints completed in some of the runs (every 50 ms in quick mode).
    const completed = report.queries.map((q) =>
      measured(q.checkpointsMemory) ? (q.checkpointsMemory.checkpoints?.completed ?? 0) : 0,
    );
    expect(completed.some((n) => n > 0)).toBe(true);
    // The checkpoint benchmark ran on its own Redis, and printed its figures.
    expect(report.checkpoints).toMatchObject({ keys: 20_000, checkpoints: expect.any(Number) });
    expect(lines.some((l) => l.startsWith('checkpoints (20,000 keys'))).toBe(true);
    // One channel between threads and processes, and q5 on two task-manager processes.
    const channels = (report as unknown as { channels: { threads: { numeric: number; bid: number } } })
      .channels;
    expect(channels.threads.numeric).toBeGreaterThan(0);
    expect(channels.threads.bid).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith('  between two processes '))).toBe(true);
    const tms = (report as unknown as { taskManagers: { queries: { query: string; ratio: number }[] } })
      .taskManagers;
    expect(tms.queries.map((q) => q.query)).toEqual(['q5']);
    expect(tms.queries[0]!.ratio).toBeGreaterThan(0);
    // Failover of a job manager (killed, gone silent) and of a task manager, once each.
    const failover = (report as unknown as { failover: Record<string, { runningMs: number }[]> }).failover;
    for (const kind of ['jobManagerKilled', 'jobManagerGone', 'taskManagerKilled'])
      expect(failover[kind]!.map((f) => f.runningMs > 0)).toEqual([true]);
    expect(
      lines.some((l) =>
        l.startsWith('  job manager killed (kill -9), standby on the same host: running again after '),
      ),
    ).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // NOTE: a smoke test of every part of the benchmark (about 30 s here, far longer on a loaded
  // machine): a time limit is no assertion about speed here.
}, 300_000);
