// A job manager and task managers as separate processes (on one host here, talking over TCP as
// they would across hosts): same results as one process; wrong tokens and broken frames refused.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Link, WireError } from '../../runtime/distributed/wire.js';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { freePort } from '../setup/redis.js';

const dir = mkdtempSync(join(ROOT, 'test', '.tmp-hosts-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const TOKEN = 'a-shared-secret-token';

function start(
  args: string[],
  token = TOKEN,
  extraEnv: Record<string, string> = {},
): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...extraEnv, TIDEMARK_TOKEN: token },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

const job = join(dir, 'keyed.mts');
writeFileSync(
  job,
  `import { FileSink, job, TumblingEventTimeWindows, WatermarkStrategy } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 11), t: i }), {
      count: 30000,
      watermarks: WatermarkStrategy.forMonotonousTimestamps().withTimestampAssigner((e) => e.t),
    })
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(1000))
    .aggregate({ createAccumulator: () => 0, add: (_e, n) => n + 1, getResult: (n) => n, merge: (a, b) => a + b }, {
      process: (k, ctx, counts, out) => { for (const n of counts) out.collect({ k, start: ctx.window.start, n }); },
    })
    .sinkTo(FileSink.jsonLines(process.env.OUT_DIR));
});
`,
);

function readParts(out: string): string[] {
  return readdirSync(out)
    .filter((f) => !f.startsWith('.'))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').trim().split('\n').filter(Boolean))
    .sort();
}

describe('a job manager and task managers in separate processes', () => {
  test('run a job on 2 task managers (3 slots) with the same results as in one process', async () => {
    const local = join(dir, 'local');
    const r = await runCli(['run', job, '-p', '3'], { env: { OUT_DIR: local } });
    expect(r.code).toBe(0);
    const expected = readParts(local);
    expect(expected.length).toBe(11 * 30);

    const port = await freePort();
    const out = join(dir, 'distributed');
    const jm = spawn(
      process.execPath,
      [BIN, 'run', job, '-p', '3', '--listen', `127.0.0.1:${port}`, '--task-managers', '2'],
      {
        cwd: ROOT,
        env: { ...process.env, TIDEMARK_TOKEN: TOKEN, OUT_DIR: out },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    children.push(jm);
    let jmErr = '';
    jm.stderr!.on('data', (d: Buffer) => (jmErr += d.toString()));
    const jmExit = new Promise<number | null>((res) => jm.once('exit', (c) => res(c)));
    while (!jmErr.includes('waiting for 2 task manager')) await new Promise((r) => setTimeout(r, 20));
    // The job module runs on the task managers too, with their environment.
    const tms = [1, 2].map((slots) =>
      start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', String(slots)], TOKEN, {
        OUT_DIR: out,
      }),
    );
    // The task managers run the sink: they write the parts (into the same directory here).
    const code = await jmExit;
    if (code !== 0)
      throw new Error(`job manager exited ${code}:\n${jmErr}\n${tms.map((t) => t.stderr()).join('\n')}`);
    expect(jmErr).toMatch(/task manager 1 .* joined/);
    expect(jmErr).toMatch(/task manager 2 .* joined/);
    expect(readParts(out)).toEqual(expected);
    // Task managers end when their job manager goes away.
    for (const t of tms) expect(await t.exit).toBe(0);
  }, 90_000);

  test('a job of parallelism 2 on two task managers of 2 slots each runs on both (slots go round the hosts)', async () => {
    const spread = join(dir, 'spread.mts');
    const pids = join(dir, 'pids');
    writeFileSync(
      spread,
      `import { writeFileSync, mkdirSync } from 'node:fs';
import { job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => i, { count: 2000 })
    .map((i) => { mkdirSync(process.env.PIDS, { recursive: true }); writeFileSync(process.env.PIDS + '/' + process.pid, ''); return i; })
    .addSink(() => {});
});
`,
    );
    const port = await freePort();
    const jm = start(
      ['run', spread, '-p', '2', '--listen', `127.0.0.1:${port}`, '--task-managers', '2'],
      TOKEN,
      {
        PIDS: pids,
      },
    );
    while (!jm.stderr().includes('waiting for 2 task manager')) await new Promise((r) => setTimeout(r, 20));
    const tms = [0, 1].map(() =>
      start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '2'], TOKEN, { PIDS: pids }),
    );
    expect(await jm.exit).toBe(0);
    for (const t of tms) await t.exit;
    const seen = new Set(readdirSync(pids).map(Number));
    expect(seen).toEqual(new Set(tms.map((t) => t.child.pid)));
  }, 60_000);

  test('a lost task manager: the job restarts on the ones left, from its last checkpoint, same results', async () => {
    const slow = join(dir, 'slow.mts');
    writeFileSync(
      slow,
      readFileSync(job, 'utf8').replace('count: 30000,', 'count: 12000, ratePerSecond: 4000,'),
    );
    const local = join(dir, 'slow-local');
    expect((await runCli(['run', slow, '-p', '2'], { env: { OUT_DIR: local } })).code).toBe(0);
    const expected = readParts(local);

    const port = await freePort();
    const out = join(dir, 'slow-distributed');
    const storage = join(dir, 'checkpoints');
    const args = ['run', slow, '-p', '2', '--listen', `127.0.0.1:${port}`, '--task-managers', '3'];
    const jm = start(
      [
        ...args,
        '--checkpoint-interval',
        '300ms',
        '--checkpoint-storage',
        storage,
        '--restart-strategy',
        'fixed-delay:3:100ms',
      ],
      TOKEN,
      { OUT_DIR: out },
    );
    while (!jm.stderr().includes('waiting for')) await new Promise((r) => setTimeout(r, 20));
    // One slot each: the job takes the first two, the third is spare.
    const tms = [0, 1, 2].map(() =>
      start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '1'], TOKEN, { OUT_DIR: out }),
    );
    // Once a checkpoint is stored, the task manager running slot 0 dies without a word.
    while (!existsSync(join(storage, 'slow', 'latest'))) await new Promise((r) => setTimeout(r, 20));
    const victim = tms.find((t) => t.stderr().includes('deployed slots 0 '))!;
    victim.child.kill('SIGKILL');
    const code = await jm.exit;
    if (code !== 0)
      throw new Error(
        `job manager exited ${code}:\n${jm.stderr()}\n${tms.map((t) => t.stderr()).join('\n')}`,
      );
    expect(jm.stderr()).toMatch(/task manager \d .* left/);
    // NOTE: the other task manager may notice first that its peer is gone.
    expect(jm.stderr()).toMatch(
      /restarting \(attempt 1\) .* from checkpoint \d+ after: .*(disconnected|cannot reach the task manager of slot)/,
    );
    expect(readParts(out)).toEqual(expected);
  }, 120_000);

  test('a task manager with the wrong token is refused with a clear error', async () => {
    const port = await freePort();
    const jm = start(['run', job, '--listen', `127.0.0.1:${port}`, '--task-managers', '1', '--wait', '3s']);
    while (!jm.stderr().includes('waiting for')) await new Promise((r) => setTimeout(r, 20));
    const tm = start(['taskmanager', '--job-manager', `127.0.0.1:${port}`], 'not-the-right-token');
    expect(await tm.exit).toBe(1);
    expect(tm.stderr()).toMatch(/refused the connection: authentication failed: wrong token/);
    expect(await jm.exit).toBe(1);
    expect(jm.stderr()).toMatch(/failed to authenticate \(wrong token\)/);
    expect(jm.stderr()).toMatch(/only 0 of 1 task managers joined within 3000 ms/);
  }, 60_000);

  test('a malformed frame closes the connection with a protocol error', async () => {
    const port = await freePort();
    const server = (await import('node:net')).createServer((socket) => {
      const link = new Link(socket, 'test peer');
      link.on('error', (e: Error) => {
        seen = e;
      });
    });
    let seen: Error | undefined;
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(0xfffffff0, 0);
    s.write(huge);
    const closed = new Promise((r) => s.once('close', r));
    await closed;
    server.close();
    expect(seen).toBeInstanceOf(WireError);
    expect(seen!.message).toMatch(/connection with test peer: a frame of \d+ bytes is larger than the limit/);
  });
});
