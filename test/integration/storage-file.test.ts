// File checkpoint storage: the layout on disk, crash leftovers, the lock, and several processes.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { CheckpointNotFoundError, StorageError } from '../../state/storage/checkpoint-storage.js';
import { FileCheckpointStorage } from '../../state/storage/file.js';

const text = (s: string) => new TextEncoder().encode(s);

describe('file checkpoint storage', () => {
  let dir: string;
  const open: FileCheckpointStorage[] = [];
  const storage = async (options: ConstructorParameters<typeof FileCheckpointStorage>[1] = {}) => {
    const s = new FileCheckpointStorage(dir, options);
    await s.open();
    open.push(s);
    return s;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidemark-file-test-'));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('lays files out as documented, with nothing left in tmp/', async () => {
    const s = await storage();
    expect(s.description).toBe(`file://${dir}`);
    const epoch = await s.newEpoch('my job');
    await s.writeChunk('my job', 'kg-1', new Uint8Array([1, 2]));
    await s.commit('my job', epoch, 3, text('meta'), ['kg-1']);
    const job = join(dir, 'my%20job');
    expect(await readFile(join(job, 'epoch'), 'utf8')).toBe('1\n');
    expect(JSON.parse(await readFile(join(job, 'latest'), 'utf8'))).toEqual({
      format: 1,
      latest: 3,
      checkpoints: [{ id: 3, savepoint: false }],
    });
    expect(await readFile(join(job, 'checkpoints', '3', 'metadata'), 'utf8')).toBe('meta');
    expect(JSON.parse(await readFile(join(job, 'checkpoints', '3', 'chunks.json'), 'utf8'))).toMatchObject({
      chunkIds: ['kg-1'],
      chunkCount: 1,
      sizeBytes: 6,
      savepoint: false,
    });
    const chunk = await readFile(join(job, 'chunks', 'kg-1'));
    expect(chunk.subarray(0, 4).toString()).toBe('TMCK');
    expect(chunk.length).toBe(16 + 2);
    expect(await readdir(join(job, 'tmp'))).toEqual([]);
    expect(existsSync(join(job, 'lock'))).toBe(false);
  });

  test('a checkpoint directory the manifest does not list (a crashed commit) is never read, and is swept', async () => {
    const s = await storage();
    const epoch = await s.newEpoch('j');
    await s.commit('j', epoch, 1, text('m1'), []);
    const leftover = join(dir, 'j', 'checkpoints', '2');
    await mkdir(leftover);
    await writeFile(join(leftover, 'metadata'), 'half written');
    await writeFile(join(dir, 'j', 'tmp', 'old.tmp'), 'x');
    const past = new Date(Date.now() - 3600_000);
    await utimes(join(dir, 'j', 'tmp', 'old.tmp'), past, past);
    expect(await s.latest('j')).toBe(1);
    expect((await s.list('j')).map((c) => c.checkpointId)).toEqual([1]);
    await expect(s.readMetadata('j', 2)).rejects.toThrow(CheckpointNotFoundError);
    await storage(); // open() sweeps
    expect(existsSync(leftover)).toBe(false);
    expect(await readdir(join(dir, 'j', 'tmp'))).toEqual([]);
    await s.commit('j', epoch, 2, text('m2'), []);
    expect(await s.readMetadata('j', 2)).toEqual(text('m2'));
  });

  test('a damaged manifest: the checkpoint directories stand for it, with one warning; the next commit writes it again', async () => {
    const s = await storage();
    const epoch = await s.newEpoch('j');
    await s.commit('j', epoch, 1, text('m1'), [], { retain: 2 });
    await s.commit('j', epoch, 2, text('m2'), [], { retain: 2, savepoint: true });
    await s.commit('j', epoch, 3, text('m3'), [], { retain: 2 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      for (const garbage of ['{"format":1,"lat', 'null', '{"format":1,"latest":"x","checkpoints":[]}']) {
        await writeFile(join(dir, 'j', 'latest'), garbage);
        const fresh = await storage();
        expect(await fresh.latest('j')).toBe(3);
        expect((await fresh.list('j')).map((c) => [c.checkpointId, c.savepoint])).toEqual([
          [1, false],
          [2, true],
          [3, false],
        ]);
        expect(await fresh.readMetadata('j', 3)).toEqual(text('m3'));
      }
      await new Promise((r) => setImmediate(r));
      // One warning per storage instance (each opened on a damaged manifest).
      expect(warnings).toHaveLength(3);
      expect(warnings[0]).toMatch(
        /^job 'j': the manifest .*latest is damaged \(not JSON\); using the 3 checkpoint\(s\) found in its directory, the latest 3$/,
      );
      const last = open.at(-1)!;
      await last.commit('j', epoch, 4, text('m4'), [], { retain: 2 });
      expect(JSON.parse(await readFile(join(dir, 'j', 'latest'), 'utf8'))).toMatchObject({ latest: 4 });
      expect(warnings).toHaveLength(3);
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a manifest of another format is a clear error (not rebuilt over)', async () => {
    const s = await storage();
    const epoch = await s.newEpoch('j');
    await s.commit('j', epoch, 1, text('m1'), []);
    await writeFile(join(dir, 'j', 'latest'), '{"format":2,"latest":1,"checkpoints":[]}');
    await expect(s.latest('j')).rejects.toThrow(
      /job 'j': the manifest .*latest has format 2, which this tidemark does not read \(it reads 1\)/,
    );
  });

  test('a lock held by a live process makes a commit wait, then fail naming the holder', async () => {
    const s = await storage({ lockTimeoutMs: 300 });
    const epoch = await s.newEpoch('j');
    const lock = join(dir, 'j', 'lock');
    const holder = { pid: process.ppid, host: hostname(), token: randomUUID(), acquiredAt: Date.now() };
    await writeFile(lock, JSON.stringify(holder));
    const started = Date.now();
    const e = await s.commit('j', epoch, 1, text('m'), []).catch((x: unknown) => x);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(e).toBeInstanceOf(StorageError);
    expect(String(e)).toMatch(new RegExp(`the lock .* is held by pid ${process.ppid} on ${hostname()}`));
    expect(await s.latest('j')).toBeUndefined();
  });

  test('a lock left by a dead process, or an old one, is broken', async () => {
    const s = await storage({ lockTimeoutMs: 2000, staleLockMs: 60_000 });
    const epoch = await s.newEpoch('j');
    const lock = join(dir, 'j', 'lock');
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.once('exit', () => resolve(child.pid ?? 0));
    });
    await writeFile(lock, JSON.stringify({ pid: deadPid, host: hostname(), token: 'x', acquiredAt: 0 }));
    await s.commit('j', epoch, 1, text('m'), []);
    expect(await s.latest('j')).toBe(1);
    // Another host's lock is judged by age only.
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'y', acquiredAt: 0 }));
    const past = new Date(Date.now() - 120_000);
    await utimes(lock, past, past);
    await s.commit('j', epoch, 2, text('m'), []);
    expect(await s.latest('j')).toBe(2);
  });

  test('a lock with our pid: from this thread but not held, a dead process whose pid we reuse; from another thread, live until old', async () => {
    const s = await storage({ lockTimeoutMs: 300, staleLockMs: 60_000 });
    const epoch = await s.newEpoch('j');
    const lock = join(dir, 'j', 'lock');
    const mine = { pid: process.pid, threadId, host: hostname(), token: 'reused', acquiredAt: 0 };
    await writeFile(lock, JSON.stringify(mine));
    await s.commit('j', epoch, 1, text('m'), []);
    expect(await s.latest('j')).toBe(1);
    await writeFile(lock, JSON.stringify({ ...mine, threadId: threadId + 1, token: 'other-thread' }));
    const e = await s.commit('j', epoch, 2, text('m'), []).catch((x: unknown) => x);
    expect(String(e)).toMatch(new RegExp(`is held by pid ${process.pid} \\(thread ${threadId + 1}\\)`));
    const past = new Date(Date.now() - 120_000);
    await utimes(lock, past, past);
    await s.commit('j', epoch, 2, text('m'), []);
    expect(await s.latest('j')).toBe(2);
    expect(existsSync(lock)).toBe(false);
  });

  test('concurrent commits from two instances lose no update, and epochs are never handed out twice', async () => {
    const a = await storage({ fsync: false });
    const b = await storage({ fsync: false });
    const epochs = await Promise.all([a.newEpoch('j'), b.newEpoch('j'), a.newEpoch('j'), b.newEpoch('j')]);
    expect([...epochs].sort()).toEqual([1, 2, 3, 4]);
    const ok: number[] = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? a : b).commit('j', 4, i + 1, text(`m${i + 1}`), [], { retain: 100 }).then(
          () => ok.push(i + 1),
          () => undefined,
        ),
      ),
    );
    expect(ok.length).toBeGreaterThan(0);
    expect((await a.list('j')).map((c) => c.checkpointId)).toEqual([...ok].sort((x, y) => x - y));
    expect(await a.latest('j')).toBe(Math.max(...ok));
  });

  test('two processes committing at once lose no update; an old epoch is fenced in another process', async () => {
    const s = await storage();
    const epoch = await s.newEpoch('j');
    const worker = fileURLToPath(new URL('../setup/file-storage-worker.ts', import.meta.url));
    const run = (ids: number[], withEpoch: number) =>
      new Promise<string[]>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', worker, dir, 'j', String(withEpoch), ids.join(',')],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.once('exit', (code) =>
          code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`worker failed (${code}): ${err}`)),
        );
      });
    const committed: number[] = [];
    // Several rounds: each races the two processes' commits (and, in each process, its own).
    for (let round = 0; round < 3; round++) {
      const ids = Array.from({ length: 30 }, (_, i) => round * 100 + i + 1);
      const lines = (
        await Promise.all([
          run(
            ids.filter((i) => i % 2 === 0),
            epoch,
          ),
          run(
            ids.filter((i) => i % 2 === 1),
            epoch,
          ),
        ])
      ).flat();
      // A commit either lands or is refused as older than the latest one: never a lock error.
      for (const line of lines) expect(line).toMatch(/^(ok|StaleCheckpointError) \d+$/);
      committed.push(...lines.filter((line) => line.startsWith('ok ')).map((line) => Number(line.slice(3))));
      expect(committed.length).toBeGreaterThan(round);
      expect((await s.list('j')).map((c) => c.checkpointId)).toEqual([...committed].sort((x, y) => x - y));
      expect(existsSync(join(dir, 'j', 'lock'))).toBe(false);
      expect(await readdir(join(dir, 'j', 'tmp'))).toEqual([]);
    }
    await s.newEpoch('j');
    expect(await run([1000], epoch)).toEqual(['FencedError 1000']);
  }, 30_000);
});
