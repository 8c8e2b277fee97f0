// Secrets on the command line: the Redis password of the checkpoint storage (and the storage URL
// itself) come from a file or the environment, never need to be in the arguments, and never appear
// in what tidemark prints: jobs on one thread, on worker threads, on a task manager of another
// process, the checkpoints commands, and their failures (wrong password, unreachable host, a
// malformed URL).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { freePort, type RedisTestServer, startRedis } from '../setup/redis.js';

const PASSWORD = 'Redis-Pw-7f3a91';
const WRONG = 'Wrong-Pw-55c1e2';

const dir = mkdtempSync(join(ROOT, 'test', '.tmp-secrets-'));
const children: ChildProcess[] = [];
let redis: RedisTestServer;
beforeAll(async () => {
  redis = await startRedis({ password: PASSWORD });
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// About two seconds at its rate, so that its arguments can be read while it runs.
const job = join(dir, 'counts.mts');
writeFileSync(
  job,
  `import { job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 5), i }), { count: 6000, ratePerSecond: 3000 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i }))
    .uid('counts')
    .addSink(() => {});
});
`,
);

const passwordFile = join(dir, 'redis-password');
writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });

interface Ran {
  code: number | null;
  output: string;
  /** The process's arguments as `ps` sees them, read while it ran ('' where /proc is missing). */
  cmdline: string;
}

/** Runs `tidemark ...args` to its end, reading its /proc/<pid>/cmdline once it has started. */
function run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    let cmdline = '';
    const readArgs = () => {
      const path = `/proc/${child.pid}/cmdline`;
      if (cmdline === '' && existsSync(path)) cmdline = readFileSync(path, 'utf8').replaceAll('\0', ' ');
    };
    const onData = (d: Buffer) => {
      output += d.toString();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('spawn', readArgs);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tidemark ${args.join(' ')} timed out:\n${output}`));
    }, 90_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, cmdline });
    });
  });
}

const storage = () => `redis://127.0.0.1:${redis.port}`;
const checkpointing = ['--checkpoint-interval', '200ms', '--progress'];

function expectNoSecret(...texts: string[]): void {
  for (const t of texts) {
    expect(t).not.toContain(PASSWORD);
    expect(t).not.toContain(WRONG);
  }
}

describe('secrets of the checkpoint storage', () => {
  test('the password from a file: a job on worker threads checkpoints to Redis; nothing shows the password', async () => {
    const withRedis = await run([
      'run',
      job,
      '-p',
      '2',
      '--slots',
      '2',
      '--job-id',
      'from-file',
      ...checkpointing,
      '--checkpoint-storage',
      storage(),
      '--redis-password-file',
      passwordFile,
    ]);
    expect(withRedis.code).toBe(0);
    expect(withRedis.output).toMatch(/\| checkpoint \d+ \(/);
    expectNoSecret(withRedis.output, withRedis.cmdline);
    if (existsSync('/proc')) expect(withRedis.cmdline).toContain('--redis-password-file');
    const list = await run([
      'checkpoints',
      'list',
      '--job',
      'from-file',
      '--storage',
      storage(),
      '--redis-password-file',
      passwordFile,
    ]);
    expect(list.code).toBe(0);
    expect(list.output).toMatch(/^from-file\tcheckpoint \d+/m);
    expectNoSecret(list.output);
  }, 120_000);

  test('storage URL and password from the environment: run and the checkpoints commands; the arguments hold neither', async () => {
    const env = { TIDEMARK_CHECKPOINT_STORAGE: storage(), TIDEMARK_REDIS_PASSWORD: PASSWORD };
    const r = await run(['run', job, '--job-id', 'from-env', ...checkpointing], env);
    expect(r.code).toBe(0);
    expectNoSecret(r.output, r.cmdline);
    if (existsSync('/proc')) {
      expect(r.cmdline).toContain(' run ');
      expect(r.cmdline).not.toContain('redis://');
    }
    const list = await run(['checkpoints', 'list', '--job', 'from-env', '--json'], env);
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.output) as { id: number }[];
    expect(rows.length).toBeGreaterThan(0);
    const id = rows[0]!.id;
    const show = await run(['checkpoints', 'show', String(id), '--job', 'from-env'], env);
    expect(show.code).toBe(0);
    expect(show.output).toContain('counts');
    const del = await run(['checkpoints', 'delete', String(id), '--job', 'from-env'], env);
    expect(del.code).toBe(0);
    // The password in the URL of the environment variable works too, and is not printed either.
    const inUrl = await run(['checkpoints', 'list', '--job', 'from-env'], {
      TIDEMARK_CHECKPOINT_STORAGE: `redis://:${PASSWORD}@127.0.0.1:${redis.port}`,
      TIDEMARK_REDIS_PASSWORD: '',
    });
    expect(inUrl.code).toBe(0);
    expectNoSecret(list.output, show.output, del.output, inUrl.output);
  }, 120_000);

  test('failures say what went wrong without the password: wrong password, unreachable host, malformed URL, missing file', async () => {
    const closed = await freePort();
    const cases: { args: string[]; env: Record<string, string>; expected: RegExp; code: number }[] = [
      {
        args: ['run', job, ...checkpointing],
        env: { TIDEMARK_CHECKPOINT_STORAGE: storage(), TIDEMARK_REDIS_PASSWORD: WRONG },
        expected: /cannot open Redis checkpoint storage redis:\/\/127\.0\.0\.1:\d+ .*authentication failed/,
        code: 1,
      },
      {
        args: ['checkpoints', 'list'],
        env: { TIDEMARK_CHECKPOINT_STORAGE: storage(), TIDEMARK_REDIS_PASSWORD: WRONG },
        expected: /authentication failed/,
        code: 1,
      },
      {
        args: [
          'checkpoints',
          'show',
          '1',
          '--job',
          'x',
          '--storage',
          `redis://:${WRONG}@127.0.0.1:${redis.port}`,
        ],
        env: {},
        expected: /authentication failed/,
        code: 1,
      },
      {
        args: ['run', job, ...checkpointing, '--checkpoint-storage', `redis://127.0.0.1:${closed}`],
        env: { TIDEMARK_REDIS_PASSWORD: PASSWORD },
        expected: /cannot open Redis checkpoint storage redis:\/\/127\.0\.0\.1:\d+ .*connection refused/,
        code: 1,
      },
      {
        args: ['checkpoints', 'list'],
        env: { TIDEMARK_CHECKPOINT_STORAGE: `redis://app:${PASSWORD}/x@127.0.0.1:${redis.port}` },
        expected: /invalid Redis URL 'redis:\/\/app:\*\*\*@127\.0\.0\.1:\d+': .*percent-encode/,
        code: 1,
      },
      {
        args: [
          'run',
          job,
          ...checkpointing,
          '--checkpoint-storage',
          storage(),
          '--redis-password-file',
          join(dir, 'nope'),
        ],
        env: {},
        expected: /^tidemark: cannot read the Redis password \(--redis-password-file\) from .*nope: ENOENT/,
        code: 2,
      },
    ];
    for (const c of cases) {
      const r = await runCli(c.args, { env: { TIDEMARK_REDIS_PASSWORD: '', ...c.env }, cwd: dir });
      expect({ args: c.args, code: r.code }).toEqual({ args: c.args, code: c.code });
      expect(r.stdout + r.stderr).toMatch(c.expected);
      expectNoSecret(r.stdout, r.stderr);
    }
    // A password on the command line works, with a warning (ps shows it), and is not printed.
    const flagged = await runCli(
      ['checkpoints', 'list', '--storage', `redis://:${PASSWORD}@127.0.0.1:${redis.port}`],
      { cwd: dir },
    );
    expect(flagged.code).toBe(0);
    expect(flagged.stderr).toMatch(
      /^tidemark: warning: the storage URL on the command line holds a password/,
    );
    expectNoSecret(flagged.stdout, flagged.stderr);
  }, 120_000);

  test('a job manager and a task manager: the password reaches the task manager but no output or argument list', async () => {
    const port = await freePort();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'a-cluster-token-from-a-file\n', { mode: 0o600 });
    const jmRun = run(
      [
        'run',
        job,
        '-p',
        '2',
        '--listen',
        `127.0.0.1:${port}`,
        '--token-file',
        tokenFile,
        '--job-id',
        'hosts',
        ...checkpointing,
      ],
      { TIDEMARK_CHECKPOINT_STORAGE: storage(), TIDEMARK_REDIS_PASSWORD: PASSWORD },
    );
    // The task manager has neither the password nor the storage: the job manager sends them.
    const start = Date.now();
    let tm: Ran | undefined;
    for (;;) {
      tm = await run(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '2'], {
        TIDEMARK_TOKEN_FILE: tokenFile,
      });
      if (tm.code === 0 || Date.now() - start > 30_000) break;
      // The job manager was not listening yet.
      await new Promise((r) => setTimeout(r, 200));
    }
    const jm = await jmRun;
    expect(jm.code).toBe(0);
    expect(tm.code).toBe(0);
    expect(jm.output).toMatch(/\| checkpoint \d+ \(/);
    expectNoSecret(jm.output, jm.cmdline, tm.output, tm.cmdline);
    if (existsSync('/proc')) expect(tm.cmdline).toContain(' taskmanager ');
    expect(jm.cmdline + tm.cmdline).not.toContain('a-cluster-token-from-a-file');
    expect(jm.output + tm.output).not.toContain('a-cluster-token-from-a-file');
  }, 120_000);
});
