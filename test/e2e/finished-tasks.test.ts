// Checkpoints after tasks finish (FLIP-147), through `tidemark run` as a user runs it: a job whose
// source has two splits, killed (SIGKILL) at parallelism 2 and resumed at parallelism 3, has a
// source subtask without a split, which finishes at once. Checkpoints keep completing after that
// (they hold the finished subtask as finished), a second kill resumes from one of them (not from
// before the rescale), and the output is exactly once. In one thread, on worker-thread slots, and on
// task manager processes.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { decodeMetadata } from '../../state/snapshot/format.js';
import { FileCheckpointStorage } from '../../state/storage/file.js';
import { BIN, ROOT } from '../helpers/cli.js';
import { freePort } from '../setup/redis.js';

// NOTE: inside the package, so that task managers started from ROOT resolve 'tidemark'.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-finished-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const COUNT = 16_000;
const TOKEN = 'finished-tasks-token';

function writeJob(name: string, out: string): string {
  const file = join(dir, `${name}.mts`);
  writeFileSync(
    file,
    `import { FileSink, job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 6), i }), { count: ${COUNT}, ratePerSecond: 2000 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: (a.n ?? 1) + 1 }))
    .uid('counts')
    .sinkTo(FileSink.jsonLines(${JSON.stringify(out)}))
    .uid('sink');
});
`,
  );
  return file;
}

/** Where a phase runs: this process, worker-thread slots, or task manager processes. */
type Mode = 'thread' | 'slots' | 'task-managers';

interface Phase {
  stderr(): string;
  exit: Promise<number | null>;
  kill(): Promise<void>;
}

async function start(job: string, storage: string, p: number, mode: Mode, restore: boolean): Promise<Phase> {
  const procs: ChildProcess[] = [];
  const errs: string[] = [];
  const spawnCli = (args: string[]) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, TIDEMARK_TOKEN: TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    procs.push(child);
    const i = errs.push('') - 1;
    child.stderr!.on('data', (d: Buffer) => (errs[i] += d.toString()));
    return child;
  };
  const args = [
    'run',
    job,
    '-p',
    String(p),
    '--checkpoint-interval',
    '100ms',
    '--checkpoint-storage',
    storage,
  ];
  if (restore) args.push('--restore', 'latest');
  if (mode === 'slots') args.push('--slots', String(p));
  const port = mode === 'task-managers' ? await freePort() : 0;
  if (mode === 'task-managers') args.push('--listen', `127.0.0.1:${port}`, '--task-managers', '2');
  const jm = spawnCli(args);
  const exit = new Promise<number | null>((r) => jm.once('exit', (code) => r(code)));
  if (mode === 'task-managers') {
    while (!errs[0]!.includes('waiting for 2 task manager')) {
      if (jm.exitCode !== null) throw new Error(`the job manager exited: ${errs[0]}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 2; i++)
      spawnCli(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '2']);
  }
  return {
    stderr: () => errs.join('\n'),
    exit,
    async kill() {
      // A crash of everything: the job manager and its task managers.
      for (const c of procs) c.kill('SIGKILL');
      await Promise.all(
        procs.map((c) =>
          c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)),
        ),
      );
    },
  };
}

async function until(what: string, phase: Phase, cond: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + 60_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${phase.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function readOut(out: string): { k: string; i: number; n?: number }[] {
  return readdirSync(out)
    .filter((f) => !f.startsWith('.'))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').trim().split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { k: string; i: number; n?: number });
}

async function rescaleWithTwoSplits(name: string, modes: [Mode, Mode, Mode]): Promise<void> {
  const out = join(dir, `${name}-out`);
  const job = writeJob(name, out);
  const storageDir = join(dir, `${name}-checkpoints`);
  const storage = new FileCheckpointStorage(storageDir);
  // NOTE: opened once, before any job runs: an open sweeps, which must not race the jobs' writes.
  await storage.open();
  const latest = async () => (await storage.latest(name).catch(() => undefined)) ?? 0;
  const restoredFrom = (text: string) => Number(/restored from checkpoint (\d+)/.exec(text)?.[1] ?? 0);

  // Parallelism 2: the generator's two splits, one per subtask. Killed after a few checkpoints.
  const first = await start(job, storageDir, 2, modes[0], false);
  await until('checkpoints at parallelism 2', first, async () => (await latest()) >= 3);
  await first.kill();

  // Parallelism 3: the two splits on two subtasks; the third has none and finishes at once.
  const second = await start(job, storageDir, 3, modes[1], true);
  await until('the restore', second, () => restoredFrom(second.stderr()) > 0);
  const rescaledFrom = restoredFrom(second.stderr());
  // Checkpoints keep completing with a finished source subtask (before FLIP-147, none did).
  await until('checkpoints after the rescale', second, async () => (await latest()) >= rescaledFrom + 3);
  await second.kill();
  const afterRescale = await latest();
  const metadata = decodeMetadata(await storage.readMetadata(name, afterRescale), {
    jobId: name,
    checkpointId: afterRescale,
  });
  const source = metadata.operators.find((o) => o.operatorId === 'numbers')!;
  expect(source.parallelism).toBe(3);
  expect(source.subtasks.filter((s) => s.finished === true).length, second.stderr()).toBeGreaterThanOrEqual(
    1,
  );

  // Killed again, resumed from a checkpoint taken after the rescale: runs to the end.
  const third = await start(job, storageDir, 3, modes[2], true);
  const code = await third.exit;
  expect(code, third.stderr()).toBe(0);
  expect(restoredFrom(third.stderr())).toBe(afterRescale);
  await storage.close();

  const rows = readOut(out);
  expect(rows.length).toBe(COUNT);
  expect(new Set(rows.map((r) => r.i)).size).toBe(COUNT);
  const perKey = new Map<string, number[]>();
  for (const r of rows) perKey.set(r.k, [...(perKey.get(r.k) ?? []), r.n ?? 1]);
  for (const ns of perKey.values())
    expect(ns.sort((a, b) => a - b)).toEqual(Array.from({ length: ns.length }, (_x, j) => j + 1));
}

describe('checkpoints after a source subtask finished (rescale from 2 to 3 with two splits)', () => {
  test('in one thread, then on three worker-thread slots: checkpoints go on, exactly once after two kills', async () => {
    await rescaleWithTwoSplits('rescale-threads', ['thread', 'slots', 'thread']);
  }, 120_000);

  test('on task manager processes: checkpoints go on, exactly once after two kills', async () => {
    await rescaleWithTwoSplits('rescale-tms', ['task-managers', 'task-managers', 'task-managers']);
  }, 150_000);
});
