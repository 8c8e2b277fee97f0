// Job manager high availability, with the CLI as a user runs it (job managers and task managers
// as separate processes on loopback, Redis real): task managers started before their job manager,
// a leader killed or paused while a standby waits, a second job manager for a job id that has a
// leader, a task manager killed and replaced, and a restart that gets no slots.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, onTestFailed, test } from 'vitest';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/jobs.js';
import { freePort } from '../setup/redis.js';

const TOKEN = 'high-availability-test-token';
const KEYS = 20;
const COUNT = 12_000;
const JOB_ID = 'counts';

// NOTE: inside the package, so that `import ... from 'tidemark'` resolves in every process.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-ha-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// A keyed running count per key into a Redis sink (exactly once: each key's counts 1..n once);
// about 8 s at full rate.
const job = join(dir, 'counts.mts');
writeFileSync(
  job,
  `import { RedisSink, job } from 'tidemark';
const prefix = process.env.PREFIX;
export default job((env) => {
  env.fromGenerator((i) => ({ k: prefix + ':out:' + (i % ${KEYS}), i, n: 1 }), { count: ${COUNT}, ratePerSecond: 1500 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: a.n + 1 }))
    .uid('counts')
    .sinkTo(RedisSink.stream('counts', {
      connection: { url: process.env.SINK_URL },
      markerPrefix: prefix + ':m',
      key: (e) => e.k,
      fields: (e) => ({ i: e.i, n: e.n }),
    }));
});
`,
);

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

let processes: Record<string, Started> = {};
afterEach(() => {
  for (const p of Object.values(processes)) p.child.kill('SIGKILL');
  processes = {};
});

/** Starts `tidemark ...args` as `name` (its standard error is printed if the test fails). */
function start(name: string, args: string[], env: Record<string, string>): Started {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, TIDEMARK_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const started = {
    child,
    stderr: () => err,
    exit: new Promise<number | null>((r) => child.once('exit', (code) => r(code))),
  };
  processes[name] = started;
  return started;
}

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 25 });
}

/** Resolves with the exit code, or fails after `timeoutMs` saying who did not exit. */
async function exitOf(p: Started, name: string, timeoutMs = 90_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.exit,
      new Promise<never>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} did not exit within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** On failure, prints what each process wrote to standard error. */
function printOnFailure(): void {
  onTestFailed(() => {
    for (const [name, p] of Object.entries(processes)) console.log(`--- ${name}:\n${p.stderr()}`);
  });
}

let redisUrl: string;
let client: Redis;
beforeAll(() => {
  redisUrl = inject('redisUrl');
  client = new Redis(redisUrl);
});
afterAll(() => client.disconnect());

/** A test's own key prefix, and the environment of its processes. */
function isolated() {
  const prefix = `ha-${randomUUID()}`;
  return { prefix, storage: `${redisUrl}/?prefix=${prefix}`, env: { PREFIX: prefix, SINK_URL: redisUrl } };
}

/** A job manager's arguments: checkpoints to Redis every 300 ms, quick restarts and heartbeats. */
function jobManager(listen: string, storage: string, extra: string[] = []): string[] {
  return [
    'run',
    job,
    '-p',
    '2',
    '--job-id',
    JOB_ID,
    '--listen',
    listen,
    '--task-managers',
    '2',
    '--checkpoint-interval',
    '300ms',
    '--checkpoint-storage',
    storage,
    '--restart-strategy',
    'fixed-delay:3:200ms',
    '--heartbeat-interval',
    '200ms',
    '--heartbeat-timeout',
    '2s',
    ...extra,
  ];
}

async function latestCheckpoint(prefix: string): Promise<number> {
  return Number((await client.get(`${prefix}:{${JOB_ID}}:latest`)) ?? 0);
}

async function written(prefix: string): Promise<number> {
  let n = 0;
  for (let k = 0; k < KEYS; k++) n += await client.xlen(`${prefix}:out:${k}`);
  return n;
}

/** Every record once; per key, the running counts 1..n, each once and in order. */
async function expectExactlyOnce(prefix: string): Promise<void> {
  const seen: number[] = [];
  for (let k = 0; k < KEYS; k++) {
    const rows = (await client.xrange(`${prefix}:out:${k}`, '-', '+')).map(([, fields]) => {
      const f = new Map<string, string>();
      for (let j = 0; j < fields.length; j += 2) f.set(fields[j]!, fields[j + 1]!);
      return { i: Number(f.get('i')), n: Number(f.get('n')) };
    });
    expect(
      rows.map((r) => r.n),
      `key ${k}`,
    ).toEqual(Array.from({ length: rows.length }, (_x, j) => j + 1));
    for (const r of rows) seen.push(r.i);
  }
  expect(seen.length).toBe(COUNT);
  expect(new Set(seen).size).toBe(COUNT);
}

/** Waits for a few checkpoints and the first commits to the sink. */
async function runningWell(prefix: string): Promise<void> {
  await until(
    async () => (await latestCheckpoint(prefix)) >= 3 && (await written(prefix)) > 0,
    'three checkpoints and the first commits',
  );
}

describe('task managers and their job manager', () => {
  test('task managers started before their job manager listens join it once it does', async () => {
    printOnFailure();
    const { prefix, storage, env } = isolated();
    const listen = `127.0.0.1:${await freePort()}`;
    const tms = [0, 1].map((i) => start(`tm${i}`, ['taskmanager', '--job-manager', listen], env));
    await until(
      () => tms.every((t) => t.stderr().includes('no job manager to register with yet')),
      'both task managers to find no job manager',
    );
    const jm = start('jm', jobManager(listen, storage), env);
    expect(await exitOf(jm, 'the job manager')).toBe(0);
    for (const t of tms) expect(t.stderr()).toMatch(new RegExp(`joined the job manager at ${listen}`));
    // Told that the job ended, they exit.
    for (const [i, t] of tms.entries()) expect(await exitOf(t, `task manager ${i}`)).toBe(0);
    await expectExactlyOnce(prefix);
  }, 120_000);

  test('a task manager killed with SIGKILL is replaced: the restart waits for its slot and runs on the new one', async () => {
    printOnFailure();
    const { prefix, storage, env } = isolated();
    const listen = `127.0.0.1:${await freePort()}`;
    const jm = start('jm', jobManager(listen, storage, ['--slot-request-timeout', '2m']), env);
    const tms = [0, 1].map((i) => start(`tm${i}`, ['taskmanager', '--job-manager', listen], env));
    await runningWell(prefix);
    const victim = tms.find((t) => t.stderr().includes('deployed slots 0 '))!;
    victim.child.kill('SIGKILL');
    await until(
      () => /the job needs 2 slots and the task managers connected have 1: waiting/.test(jm.stderr()),
      'the restart to wait for a slot',
    );
    const replacement = start('replacement', ['taskmanager', '--job-manager', listen], env);
    expect(await exitOf(jm, 'the job manager')).toBe(0);
    // The restart names slot 0 either way the loss is seen first: its task manager's connection
    // to the job manager closing ("(slot 0)"), or the other task manager's data connection to it
    // ("cannot reach the task manager of slot 0").
    expect(jm.stderr()).toMatch(
      /restarting \(attempt 1\) in 200 ms from checkpoint \d+ after: .*(\(slot 0\)|the task manager of slot 0 )/,
    );
    expect(jm.stderr()).not.toMatch(/attempt 2/);
    expect(jm.stderr()).not.toMatch(/running on 1 of 2 slots/);
    expect(replacement.stderr()).toMatch(/deployed slots \d of job module/);
    expect(await exitOf(replacement, 'the replacement')).toBe(0);
    await expectExactlyOnce(prefix);
  }, 120_000);

  test('a restart that gets no slot within the slot request timeout fails, saying so', async () => {
    printOnFailure();
    const { prefix, storage, env } = isolated();
    const listen = `127.0.0.1:${await freePort()}`;
    const jm = start(
      'jm',
      [
        ...jobManager(listen, storage, ['--slot-request-timeout', '1s']),
        '--task-managers',
        '1',
        '--restart-strategy',
        'fixed-delay:1:100ms',
      ],
      env,
    );
    const tm = start('tm', ['taskmanager', '--job-manager', listen, '--slots', '2'], env);
    await runningWell(prefix);
    tm.child.kill('SIGKILL');
    expect(await exitOf(jm, 'the job manager')).toBe(1);
    expect(jm.stderr()).toMatch(
      /the job needs 2 slots and the task managers connected have 0: waiting up to 1000 ms for task managers to bring more/,
    );
    expect(jm.stderr()).toMatch(
      /tidemark: job 'counts' has no slots to run on: no task manager is connected, and none came within the slot request timeout \(after 1 restart\(s\); not restarting/,
    );
  }, 120_000);
});

describe('a standby job manager', () => {
  /** A leader on one port, a standby on another, two task managers that find the leader in Redis. */
  async function cluster(extra: string[] = []) {
    const { prefix, storage, env } = isolated();
    const [a, b] = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const ha = ['--ha', storage, '--lease-duration', '2s', ...extra];
    const leader = start('leader', jobManager(a, storage, ha), env);
    await until(() => leader.stderr().includes('waiting for 2 task manager'), 'the leader to listen');
    const standby = start('standby', jobManager(b, storage, ha), env);
    await until(() => standby.stderr().includes('waiting as its standby'), 'the standby to wait');
    const taskManager = ['taskmanager', '--ha', storage, '--job-id', JOB_ID];
    const tms = [0, 1].map((i) => start(`tm${i}`, taskManager, env));
    await runningWell(prefix);
    return { prefix, a, b, leader, standby, tms };
  }

  test('takes over when the leader is killed: the job resumes from its latest checkpoint, exactly once', async () => {
    printOnFailure();
    const { prefix, a, b, leader, standby, tms } = await cluster();
    expect(standby.stderr()).toMatch(
      new RegExp(
        `job '${JOB_ID}' is led by the job manager with pid ${leader.child.pid} on host .*, listening on ${a}`,
      ),
    );
    leader.child.kill('SIGKILL');
    expect(await exitOf(standby, 'the standby')).toBe(0);
    expect(standby.stderr()).toMatch(
      new RegExp(
        `taking over the run of job '${JOB_ID}' from the job manager at ${a}: resuming from its latest checkpoint \\((\\d+)\\)`,
      ),
    );
    expect(standby.stderr()).toMatch(/restored from checkpoint \d+/);
    for (const [i, t] of tms.entries()) {
      expect(await exitOf(t, `task manager ${i}`)).toBe(0);
      expect(t.stderr()).toContain(`joined the job manager at ${b}`);
    }
    await expectExactlyOnce(prefix);
  }, 150_000);

  test('takes over at once from a leader stopped with SIGTERM, which hands its run over', async () => {
    printOnFailure();
    const { prefix, b, leader, standby, tms } = await cluster(['--lease-duration', '1m']);
    leader.child.kill('SIGTERM');
    expect(await exitOf(leader, 'the leader')).toBe(143);
    expect(leader.stderr()).toMatch(
      /SIGTERM: handing job 'counts' over to a standby \(Ctrl-C cancels the job\)/,
    );
    // Long before its lease of a minute would have run out.
    await until(
      () => standby.stderr().includes('restored from checkpoint'),
      'the standby to take over',
      30_000,
    );
    // It gave its lease up before it exited (a lease left by a process that is gone is released too).
    expect(standby.stderr()).not.toContain('which is gone');
    expect(await exitOf(standby, 'the standby')).toBe(0);
    for (const [i, t] of tms.entries()) {
      expect(await exitOf(t, `task manager ${i}`)).toBe(0);
      expect(t.stderr()).toContain(`joined the job manager at ${b}`);
    }
    await expectExactlyOnce(prefix);
  }, 150_000);

  test('takes over from a paused leader once its lease ran out; the leader, resumed, stops without a result', async () => {
    printOnFailure();
    const { prefix, b, leader, standby, tms } = await cluster();
    leader.child.kill('SIGSTOP');
    try {
      // (The lease runs out in 2 s; then the task managers give up the paused leader by heartbeat
      // and join the standby: seconds, but a loaded machine gets two minutes.)
      await until(
        () => standby.stderr().includes('restored from checkpoint'),
        'the standby to take over',
        120_000,
      );
      await until(
        () => tms.every((t) => t.stderr().includes(`joined the job manager at ${b}`)),
        'the task managers to join the standby',
      );
    } finally {
      leader.child.kill('SIGCONT');
    }
    expect(await exitOf(leader, 'the old leader')).toBe(1);
    expect(leader.stderr()).toMatch(
      new RegExp(`tidemark: job '${JOB_ID}': stopped without a result: lost the leadership: `),
    );
    expect(await exitOf(standby, 'the standby')).toBe(0);
    for (const [i, t] of tms.entries()) expect(await exitOf(t, `task manager ${i}`)).toBe(0);
    await expectExactlyOnce(prefix);
  }, 240_000);
});

describe('a second job manager for a job id that has a leader', () => {
  test('is refused, naming the job and the leader; with --standby it waits, and exits when the run ends', async () => {
    printOnFailure();
    const { prefix, env } = isolated();
    // Checkpoints in a directory: the lease is there too (no --ha).
    const storage = join(dir, `checkpoints-${prefix}`);
    const listen = `127.0.0.1:${await freePort()}`;
    const args = (port: string, extra: string[] = []) =>
      jobManager(port, storage, ['--task-managers', '1', ...extra]);
    const first = start('first', args(listen), env);
    await until(() => first.stderr().includes('waiting for 1 task manager'), 'the first to listen');
    const second = start('second', args(`127.0.0.1:${await freePort()}`), env);
    expect(await exitOf(second, 'the second')).toBe(1);
    expect(second.stderr()).toMatch(
      new RegExp(
        `^tidemark: job '${JOB_ID}' already has a job manager: pid ${first.child.pid} on host .*, listening on ${listen}, leading since .*Stop it first, or start this one with --standby`,
      ),
    );
    const standby = start('standby', args(`127.0.0.1:${await freePort()}`, ['--standby']), env);
    await until(() => standby.stderr().includes('waiting as its standby'), 'the standby to wait');
    const tm = start('tm', ['taskmanager', '--job-manager', listen, '--slots', '2'], env);
    expect(await exitOf(first, 'the first')).toBe(0);
    expect(await exitOf(standby, 'the standby')).toBe(0);
    expect(standby.stderr()).toMatch(
      new RegExp(
        `the run of job '${JOB_ID}' ended under the job manager at ${listen} \\(FINISHED\\); this standby has nothing to take over`,
      ),
    );
    expect(await exitOf(tm, 'the task manager')).toBe(0);
    await expectExactlyOnce(prefix);
  }, 120_000);
});

test('the flags of high availability are checked: one line saying what is wrong, exit code 2', async () => {
  const cases: [string[], string][] = [
    [['taskmanager'], 'tidemark: taskmanager needs --job-manager HOST:PORT or --ha URL --job-id ID'],
    [
      ['taskmanager', '--ha', 'redis://127.0.0.1:1'],
      'tidemark: taskmanager --ha needs --job-id: the job whose leading job manager to join',
    ],
    [
      ['taskmanager', '--job-manager', '127.0.0.1:6123,nohost'],
      "tidemark: --job-manager: 'nohost' is not host:port",
    ],
    [
      ['taskmanager', '--ha', 'memory://x', '--job-id', 'j'],
      'tidemark: --ha memory://x: keeps no leader leases (use redis://..., rediss://... or a directory)',
    ],
    [
      ['run', job, '--standby'],
      'tidemark: --standby needs a place for the leader lease: --ha URL, or checkpointing to a file or Redis checkpoint storage',
    ],
    [
      ['run', job, '--ha', 'memory://x'],
      'tidemark: --ha memory://x: keeps no leader leases (use redis://..., rediss://... or a directory)',
    ],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args, { env: { TIDEMARK_TOKEN: TOKEN } });
    expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 2, stderr: `${message}\n` });
  }
}, 120_000);
