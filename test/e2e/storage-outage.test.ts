// A checkpoint storage outage of a minute, ridden out: `tidemark run` (two worker-thread slots)
// checkpoints to a real redis-server, which is shut down in the middle of the run (SIGTERM, as
// `systemctl stop` or `redis-cli shutdown` does: Redis writes its append-only file before it exits)
// and started again 60 s later on the same port and data directory, so it comes back with every
// checkpoint it had. Meanwhile the checkpoint that cannot be written fails (logged, with its id and
// job, and shown on the progress line), the job fails (no failure tolerated), and the restarts'
// reads of the latest checkpoint fail and are tried again under the restart strategy (one log
// line each); once Redis is back the job is restored and finishes with exactly-once output.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { type RedisTestServer, startRedis } from '../setup/redis.js';

const OUTAGE_MS = 60_000;
const COUNT = 12_000;

const dirs: string[] = [];
const servers: RedisTestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function readOut(dir: string): { k: string; i: number; n?: number }[] {
  const out = join(dir, 'out');
  return readdirSync(out)
    .filter((f) => !f.startsWith('.'))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').trim().split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { k: string; i: number; n?: number });
}

describe('a checkpoint storage outage', () => {
  test(
    'Redis down for 60 s mid-run: failed checkpoints logged, restart reads retried, the job runs again and ends exactly once',
    async () => {
      const redis = await startRedis({ persistence: true });
      servers.push(redis);
      const dir = mkdtempSync(join(tmpdir(), 'tidemark-outage-'));
      dirs.push(dir);
      const job = join(dir, 'outage.mts');
      writeFileSync(
        job,
        `import { FileSink, job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 5), i }), { count: ${COUNT}, ratePerSecond: 1000 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: (a.n ?? 1) + 1 }))
    .uid('counts')
    .sinkTo(FileSink.jsonLines(${JSON.stringify(join(dir, 'out'))}));
});
`,
      );
      const started = Date.now();
      const child = spawn(
        process.execPath,
        [
          BIN,
          'run',
          job,
          '-p',
          '2',
          '--slots',
          '2',
          '--progress',
          '--checkpoint-interval',
          '200ms',
          '--checkpoint-storage',
          `${redis.url}/?prefix=outage`,
        ],
        { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

      // A few checkpoints complete, then Redis goes away for a minute.
      const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      await client.connect();
      const latest = async () => Number((await client.get('outage:{outage}:latest')) ?? 0);
      const deadline = Date.now() + 30_000;
      while ((await latest()) < 3) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no checkpoints: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const beforeOutage = await latest();
      client.disconnect();
      await redis.shutdown();
      const outageStarted = Date.now();
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      await redis.restart();
      const outageMs = Date.now() - outageStarted;

      const code = await Promise.race([
        exited,
        new Promise<never>((_r, reject) =>
          setTimeout(() => reject(new Error(`the job did not end after the outage: ${stderr}`)), 90_000),
        ),
      ]);
      const totalMs = Date.now() - started;
      console.log(
        `outage ${outageMs} ms; the job ended ${Date.now() - outageStarted - outageMs} ms after Redis was back; whole run ${totalMs} ms`,
      );
      expect(code, stderr).toBe(0);
      const lines = stderr.split('\n');
      // The checkpoint that could not be written failed: one line, naming it and the job.
      const failed = lines.filter((l) => /^\[outage\] checkpoint \d+ of job 'outage' failed \(/.test(l));
      expect(failed.length, stderr).toBeGreaterThanOrEqual(1);
      expect(failed[0]).toMatch(/\(1 in a row, 0 tolerated: the job fails\): .*(Redis|redis)/);
      const failedIds = failed.map((l) => Number(/checkpoint (\d+)/.exec(l)![1]));
      expect(new Set(failedIds).size).toBe(failedIds.length);
      expect(failedIds[0]).toBeGreaterThan(beforeOutage);
      // The progress line showed it.
      expect(stderr).toMatch(/\| \d+ checkpoint\(s\) failed since \(last \d+\)/);
      // Each restart that could not read the latest checkpoint: one line, and the next try.
      const unreadable = lines.filter((l) =>
        /restarting \(attempt \d+\) in \d+ ms from checkpoint \d+ after: restart attempt \d+ of job 'outage' could not read its latest checkpoint: .*/.test(
          l,
        ),
      );
      expect(unreadable.length, stderr).toBeGreaterThanOrEqual(2);
      // Restored once Redis was back, from a checkpoint taken before the outage or after it.
      const restored = lines.filter((l) => /^\[outage\] restored from checkpoint \d+$/.test(l));
      expect(restored.length, stderr).toBeGreaterThanOrEqual(1);
      expect(Number(/(\d+)$/.exec(restored[restored.length - 1]!)![1])).toBeGreaterThanOrEqual(beforeOutage);
      // Exactly once: every record once, each key's running count 1..n once.
      const rows = readOut(dir);
      expect(rows.length).toBe(COUNT);
      expect(new Set(rows.map((r) => r.i)).size).toBe(COUNT);
      const perKey = new Map<string, number[]>();
      for (const r of rows) perKey.set(r.k, [...(perKey.get(r.k) ?? []), r.n ?? 1]);
      for (const ns of perKey.values())
        expect(ns.sort((a, b) => a - b)).toEqual(Array.from({ length: ns.length }, (_x, j) => j + 1));
    },
    OUTAGE_MS + 150_000,
  );
});
