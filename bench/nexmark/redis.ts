/**
 * A Redis server for the checkpoint runs: `TIDEMARK_REDIS_URL` if set, else a local `redis-server`
 * started here on a free port (no persistence, its own temporary directory), else none.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A Redis server to use, and how to let it go. */
export interface BenchRedis {
  url: string;
  /** Where it comes from, for the report. */
  source: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function redisServerInstalled(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The Redis to checkpoint to, or a sentence saying why there is none. */
export async function benchRedis(): Promise<BenchRedis | string> {
  const fromEnv = process.env.TIDEMARK_REDIS_URL;
  if (fromEnv !== undefined && fromEnv !== '')
    return { url: fromEnv, source: 'TIDEMARK_REDIS_URL', stop: async () => {} };
  if (!redisServerInstalled()) return 'skipped: no TIDEMARK_REDIS_URL and no redis-server installed';
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-redis-'));
  const args = [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
  ];
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // NOTE: killed with the benchmark, even when it fails half-way.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  try {
    await new Promise<void>((resolve, reject) => {
      let log = '';
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start within 10 s:\n${log}`)),
        10_000,
      );
      const onData = (d: Buffer) => {
        log += d.toString();
        if (log.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) while starting:\n${log}`));
      });
    });
  } catch (e) {
    kill();
    rmSync(dir, { recursive: true, force: true });
    return `skipped: ${e instanceof Error ? e.message : String(e)}`;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    source: `a local redis-server on port ${port}`,
    stop: async () => {
      process.removeListener('exit', kill);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Leaves nothing behind in a (possibly shared) Redis: deletes every key under `keyPrefix`. */
export async function deleteKeys(url: string, keyPrefix: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
