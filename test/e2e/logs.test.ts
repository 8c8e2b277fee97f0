// Logs of the command (runtime/log.ts): --log-format json|pretty|line, --log-level and the
// environment variables; records of slots and task managers carry the same fields.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { freePort } from '../setup/redis.js';

const dir = mkdtempSync(join(ROOT, 'test', '.tmp-logs-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** The environment of a child without the log settings of the one running the tests. */
const ENV = { TIDEMARK_LOG_LEVEL: undefined, TIDEMARK_LOG_FORMAT: undefined };

// Subtask 1 of the map fails once, on its first attempt, after a few checkpoints: its 400th
// record comes 2 s after the source starts (200 records/s each), checkpoints every 100 ms. (Its
// 150th, at 0.75 s, came once before the first checkpoint completed, in a CI run on a busy
// machine: the restart then started from scratch.)
const flaky = join(dir, 'flaky.mts');
writeFileSync(
  flaky,
  `import { job, RichMapFunction } from 'tidemark';
class FailOnce extends RichMapFunction {
  n = 0;
  map(v) {
    const info = this.getRuntimeContext().taskInfo;
    if (info.attemptNumber === 0 && info.subtaskIndex === 1 && ++this.n === 400) throw new Error('boom on ' + v.i);
    return v;
  }
}
export default job((env) => {
  env.fromGenerator((i) => ({ i }), { count: 1000, ratePerSecond: 400 })
    .map(new FailOnce())
    .name('fail once')
    .filter(() => false)
    .print();
});
`,
);

// Fails for good: subtask 0 of the map throws on its first record.
const failing = join(dir, 'failing.mts');
writeFileSync(
  failing,
  `import { job } from 'tidemark';
export default job((env) => {
  env.fromElements(1, 2, 3).map((n) => { throw new Error('bad record ' + n); }).name('always fails').print();
});
`,
);

const small = join(dir, 'small.mts');
writeFileSync(
  small,
  `import { job } from 'tidemark';
export default job((env) => { env.fromElements(1, 2, 3).filter(() => false).print(); });
`,
);

interface Record {
  level: string;
  time: string;
  msg: string;
  pid: number;
  job?: string;
  vertex?: string;
  subtask?: number;
  checkpoint?: number;
  slot?: number;
  component?: string;
  [k: string]: unknown;
}

/** Every line of `stderr` as a JSON record (fails on a line that is not one). */
function records(stderr: string): Record[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  return lines.map((l) => {
    let r: Record;
    try {
      r = JSON.parse(l) as Record;
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
    expect(typeof r.level).toBe('string');
    expect(Number.isNaN(Date.parse(r.time))).toBe(false);
    expect(typeof r.msg).toBe('string');
    return r;
  });
}

describe('logs', () => {
  test('--log-format json: every line a record; checkpoints carry their id, the task failure its vertex and subtask, slots their slot', async () => {
    const storage = join(dir, 'checkpoints-flaky');
    const r = await runCli(
      [
        'run',
        flaky,
        '-p',
        '2',
        '--slots',
        '2',
        '--checkpoint-interval',
        '100ms',
        '--checkpoint-storage',
        storage,
        '--restart-strategy',
        'fixed-delay:2:10ms',
        '--log-format',
        'json',
        '--log-level',
        'debug',
      ],
      { env: ENV, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const all = records(r.stderr);
    for (const x of all) {
      expect(x.job).toBe('flaky');
      expect(x.pid).toBeGreaterThan(0);
    }
    const completed = all.filter((x) => /^checkpoint \d+ completed/.test(x.msg));
    expect(completed.length).toBeGreaterThan(0);
    for (const x of completed) {
      expect(x.level).toBe('debug');
      expect(x.checkpoint).toBe(Number(/^checkpoint (\d+)/.exec(x.msg)![1]));
    }
    const restart = all.find((x) => x.msg.startsWith('restarting (attempt 1)'));
    expect(restart).toMatchObject({ level: 'warn', vertex: 'fail once', subtask: 1, attempt: 1 });
    expect(restart!.msg).toMatch(/boom on \d+/);
    // It resumes from a checkpoint: the restart line and the restore say which.
    expect(restart!.checkpoint).toBeGreaterThan(0);
    expect(all.find((x) => x.msg.startsWith('restored from checkpoint'))?.checkpoint).toBe(
      restart!.checkpoint,
    );
    // Records of the slots (worker threads) reach the same place with the same fields.
    const slots = all.filter((x) => x.component === 'slot');
    expect(new Set(slots.map((x) => x.slot))).toEqual(new Set([0, 1]));
    const failed = slots.find((x) => x.msg.startsWith('slot 1 failed: '));
    expect(failed).toMatchObject({ vertex: 'fail once', subtask: 1, slot: 1 });
  }, 90_000);

  test('a job that fails for good: the last record is an error with the job, vertex and subtask', async () => {
    const r = await runCli(['run', failing, '--log-format', 'json'], { env: ENV });
    expect(r.code).toBe(1);
    const all = records(r.stderr);
    const last = all.at(-1)!;
    expect(last).toMatchObject({ level: 'error', job: 'failing', vertex: 'always fails', subtask: 0 });
    expect(last.msg).toContain('bad record 1');
  });

  test('TIDEMARK_LOG_LEVEL=warn drops info lines; the line format is the default off a terminal, as before', async () => {
    const storage = join(dir, 'checkpoints-small');
    const args = ['run', small, '--restore', 'latest-or-fresh', '--checkpoint-storage', storage];
    const line = `[small] job 'small' has no checkpoint in file://${storage}: starting from the beginning (restore latest-or-fresh)\n`;
    const plain = await runCli(args, { env: ENV });
    expect(plain.code).toBe(0);
    expect(plain.stderr).toBe(line);
    const quiet = await runCli(args, { env: { ...ENV, TIDEMARK_LOG_LEVEL: 'warn' } });
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    // The flag wins over the environment.
    const flagged = await runCli([...args, '--log-level', 'info'], {
      env: { ...ENV, TIDEMARK_LOG_LEVEL: 'warn' },
    });
    expect(flagged.stderr).toBe(line);
    const json = await runCli(args, { env: { ...ENV, TIDEMARK_LOG_FORMAT: 'json' } });
    expect(records(json.stderr)).toMatchObject([
      { level: 'info', job: 'small', msg: line.slice('[small] '.length, -1) },
    ]);
    const pretty = await runCli([...args, '--log-format', 'pretty'], { env: ENV });
    // Not a terminal: no colours.
    expect(pretty.stderr).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d\d\d\] INFO: job 'small' has no checkpoint in .* \{"job":"small","component":"jobmanager"\}\n$/,
    );
  }, 90_000);

  test('an invalid --log-level or TIDEMARK_LOG_FORMAT is a usage error (exit 2)', async () => {
    const flag = await runCli(['run', small, '--log-level', 'verbose'], { env: ENV });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe(
      "tidemark: option '--log-level <level>' argument 'verbose' is invalid. Allowed choices are trace, debug, info, warn, error.\n",
    );
    const env = await runCli(['run', small], { env: { ...ENV, TIDEMARK_LOG_FORMAT: 'xml' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toBe(
      "tidemark: option '--log-format <format>' value 'xml' from env 'TIDEMARK_LOG_FORMAT' is invalid. Allowed choices are line, pretty, json.\n",
    );
  });

  test('a task manager logs JSON records too, with its component and the job id it was given', async () => {
    const port = await freePort();
    const env = { ...process.env, ...ENV, TIDEMARK_TOKEN: 'a-token-for-logs', TIDEMARK_LOG_FORMAT: 'json' };
    const jm = spawn(
      process.execPath,
      [BIN, 'run', small, '--job-id', 'logged', '--listen', `127.0.0.1:${port}`, '--task-managers', '1'],
      { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const tm = spawn(
      process.execPath,
      [BIN, 'taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '1', '--log-level', 'debug'],
      { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(jm, tm);
    const output = (c: ChildProcess) => {
      let text = '';
      c.stderr!.on('data', (d: Buffer) => (text += d.toString()));
      return new Promise<{ code: number | null; text: string }>((r) =>
        c.once('close', (code) => r({ code, text })),
      );
    };
    const [j, t] = await Promise.all([output(jm), output(tm)]);
    expect(j.code, j.text).toBe(0);
    expect(t.code, t.text).toBe(0);
    const jmRecords = records(j.text);
    expect(jmRecords.some((x) => x.job === 'logged' && /task manager 1 .* joined/.test(x.msg))).toBe(true);
    const tmRecords = records(t.text);
    expect(
      tmRecords.some((x) => x.component === 'taskmanager' && x.msg.startsWith('joined the job manager')),
    ).toBe(true);
    // Its slot logs (debug) as the task manager does, with the job id of the job manager's run.
    expect(tmRecords.some((x) => x.component === 'slot' && x.job === 'logged' && x.slot === 0)).toBe(true);
  }, 60_000);
});
