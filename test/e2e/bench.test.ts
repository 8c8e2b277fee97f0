// `npm run bench -- --quick` as a user runs it: a table and a JSON report with every query, both
// sides computing the same results, checkpoint runs in memory and to Redis, and latency figures.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, inject, onTestFinished, test } from 'vitest';
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

/** The test's time limit, and the benchmark's (a little less, so that it is ended and reported first). */
const TEST_TIMEOUT_MS = 600_000;
const RUN_TIMEOUT_MS = TEST_TIMEOUT_MS - 60_000;

/**
 * Runs `npm run bench -- ARGS`. NOTE: in a process group of its own (npm, the benchmark and every
 * process it starts), killed whole if the run outlives `timeoutMs` or its test: a run cut short
 * by the test's time limit would otherwise go on loading the machine under the next tests.
 */
function npmRunBench(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('npm', ['run', '--silent', 'bench', '--', ...args], {
    cwd: ROOT,
    // The run's shared Redis, rather than a server of the benchmark's own.
    env: { ...process.env, TIDEMARK_REDIS_URL: inject('redisUrl') },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  onTestFinished(killGroup);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killGroup();
      reject(
        new Error(
          `npm run bench -- ${args.join(' ')} did not end within ${timeoutMs / 1000} s (killed); it printed:\n${stdout}${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const measured = (m: Measurement | Unavailable): m is Measurement => !('unavailable' in m);

test(
  'npm run bench -- --quick --json FILE prints a table and writes JSON with every query',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
    try {
      const file = join(dir, 'bench.json');
      const r = await npmRunBench(['--quick', '--json', file], RUN_TIMEOUT_MS);
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
    // NOTE: a smoke test of every part of the benchmark (about 30 s here, several minutes on a
    // loaded machine: it starts a process per query, each loading tsx): a time limit is no
    // assertion about speed here, only a guard against a run that hangs.
  },
  TEST_TIMEOUT_MS,
);
