// A job manager and task managers as separate processes with TLS between them (mutual, with a
// throwaway CA): the job gives the same results as in one process, nothing of it crosses in the
// clear, and task managers with a certificate of another CA, or without TLS, are refused and
// logged while the job manager waits on for the right ones.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encode } from '../../state/snapshot/format.js';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/jobs.js';
import { makeTestCa, type TestCertificate } from '../setup/certificates.js';
import { freePort, opensslAvailable } from '../setup/redis.js';

const dir = mkdtempSync(join(ROOT, 'test', '.tmp-tls-'));
const children: ChildProcess[] = [];
const servers: Server[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

let jmCert: TestCertificate;
let tmCerts: TestCertificate[];
let stranger: TestCertificate;
beforeAll(() => {
  if (!opensslAvailable()) return;
  const ca = makeTestCa('tidemark e2e CA');
  jmCert = ca.issue('job manager');
  tmCerts = [ca.issue('task manager 1'), ca.issue('task manager 2')];
  stranger = makeTestCa('another CA').issue('task manager');
});

const tlsFlags = (c: TestCertificate, ca = c.caFile) => [
  '--tls-cert',
  c.certFile,
  '--tls-key',
  c.keyFile,
  '--tls-ca',
  ca,
];

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Started {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, TIDEMARK_TOKEN: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 20 });
}

/** A TCP proxy to `port` that keeps every byte that passes, both ways. */
async function sniffingProxy(port: number): Promise<{ port: number; bytes: () => Buffer }> {
  const seen: Buffer[] = [];
  const server = createServer((client: Socket) => {
    const upstream = connect(port, '127.0.0.1');
    client.on('data', (d: Buffer) => {
      seen.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      seen.push(Buffer.from(d));
      client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, bytes: () => Buffer.concat(seen) };
}

// Keyed windows over 3 slots: records cross between the task managers. The job module's name is
// in every deployment the job manager sends, so it would show on a plain-text wire.
const job = join(dir, 'secret-marker-job.mts');
writeFileSync(
  job,
  `import { FileSink, job, TumblingEventTimeWindows, WatermarkStrategy } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'key-' + (i % 7), t: i }), {
      count: 20000,
      ratePerSecond: 5000,
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

describe.skipIf(!opensslAvailable())('TLS between a job manager and its task managers', () => {
  test('a job on 2 task managers over mutual TLS: same results, nothing in the clear, a plain data connection refused', async () => {
    const local = join(dir, 'local');
    expect((await runCli(['run', job, '-p', '3'], { env: { OUT_DIR: local } })).code).toBe(0);
    const expected = readParts(local);
    expect(expected.length).toBe(7 * 20);

    const port = await freePort();
    const out = join(dir, 'tls');
    // No token: the CA authenticates. The job manager's TLS files come as flags.
    const jm = start(
      ['run', job, '-p', '3', '--listen', `127.0.0.1:${port}`, '--task-managers', '2', ...tlsFlags(jmCert)],
      { OUT_DIR: out },
    );
    await until(() => jm.stderr().includes('waiting for 2 task manager(s) on'), 'the job manager to listen');
    expect(jm.stderr()).toContain(`waiting for 2 task manager(s) on 127.0.0.1:${port} (TLS)`);
    const proxy = await sniffingProxy(port);
    const dataPort = await freePort();
    // One task manager by flags, the other by environment variables; both through the proxy.
    const tm1 = start(
      [
        'taskmanager',
        '--job-manager',
        `127.0.0.1:${proxy.port}`,
        '--slots',
        '1',
        '--data-port',
        String(dataPort),
        ...tlsFlags(tmCerts[0]!),
      ],
      { OUT_DIR: out },
    );
    const tm2 = start(['taskmanager', '--job-manager', `127.0.0.1:${proxy.port}`, '--slots', '2'], {
      OUT_DIR: out,
      TIDEMARK_TLS_CERT: tmCerts[1]!.certFile,
      TIDEMARK_TLS_KEY: tmCerts[1]!.keyFile,
      TIDEMARK_TLS_CA: tmCerts[1]!.caFile,
    });
    // While the job runs: a connection without TLS to a task manager's data port is refused.
    await until(() => tm1.stderr().includes('deployed slots'), 'the deployment');
    await new Promise<void>((resolve) => {
      const s = connect(dataPort, '127.0.0.1', () => {
        const body = encode({ hello: 'tidemark/1' });
        const head = Buffer.alloc(4);
        head.writeUInt32BE(body.length, 0);
        s.write(Buffer.concat([head, body]));
      });
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
    const code = await jm.exit;
    if (code !== 0)
      throw new Error(`job manager exited ${code}:\n${jm.stderr()}\n${tm1.stderr()}\n${tm2.stderr()}`);
    expect(readParts(out)).toEqual(expected);
    expect(await tm1.exit).toBe(0);
    expect(await tm2.exit).toBe(0);
    expect(tm1.stderr()).toMatch(
      /data connection: refused 127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+ does not speak TLS: wrong version number/,
    );
    // What crossed between the job manager and the task managers: TLS records only.
    const wire = proxy.bytes();
    expect(wire.length).toBeGreaterThan(10_000);
    expect(wire.subarray(0, 2)).toEqual(Buffer.from([0x16, 0x03]));
    for (const clear of ['secret-marker-job', 'tidemark/1', 'taskmanager', 'heartbeat', 'key-3'])
      expect(wire.includes(clear)).toBe(false);
  }, 120_000);

  test('a task manager with a certificate of another CA, and one without TLS, are refused and logged; the job manager waits on', async () => {
    const port = await freePort();
    const out = join(dir, 'refused');
    const jm = start(
      [
        'run',
        job,
        '-p',
        '1',
        '--listen',
        `127.0.0.1:${port}`,
        '--task-managers',
        '1',
        '--wait',
        '60s',
        ...tlsFlags(jmCert),
      ],
      { OUT_DIR: out },
    );
    await until(() => jm.stderr().includes('waiting for'), 'the job manager to listen');
    // It trusts the cluster's CA, but its certificate was signed by another.
    const foreign = start([
      'taskmanager',
      '--job-manager',
      `127.0.0.1:${port}`,
      ...tlsFlags(stranger, jmCert.caFile),
    ]);
    expect(await foreign.exit).toBe(1);
    expect(foreign.stderr()).toMatch(
      new RegExp(
        `^tidemark: 127\\.0\\.0\\.1:${port} refused the connection: this process's TLS certificate was not accepted \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)`,
      ),
    );
    await until(
      () => /refused .*its TLS certificate was not accepted/.test(jm.stderr()),
      'the refusal in the log',
    );
    // Without TLS (and with a token, which does not help).
    const plain = start(['taskmanager', '--job-manager', `127.0.0.1:${port}`], {
      TIDEMARK_TOKEN: 'a-token-of-some-length',
    });
    expect(await plain.exit).toBe(1);
    expect(plain.stderr()).toMatch(
      /closed the connection during the handshake \(does it use TLS\? then this process needs the same TLS settings/,
    );
    // It tries three times (a job manager that closes handshakes may be restarting), then gives up.
    // From the same address within 10 s: counted, and said when the 10 s are over.
    await until(() => /does not speak TLS/.test(jm.stderr()), 'the second refusal in the log');
    expect(jm.stderr()).toMatch(
      /\[secret-marker-job\] 3 more connection\(s\) from 127\.0\.0\.1 refused in the last 10 s; the last: refused 127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+ does not speak TLS: wrong version number \(ERR_SSL_WRONG_VERSION_NUMBER\); give every process of the cluster the same TLS settings/,
    );
    // Still waiting: the right task manager joins and the job runs.
    const good = start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, ...tlsFlags(tmCerts[0]!)], {
      OUT_DIR: out,
    });
    const code = await jm.exit;
    if (code !== 0) throw new Error(`job manager exited ${code}:\n${jm.stderr()}\n${good.stderr()}`);
    expect(readParts(out).length).toBe(7 * 20);
    expect(jm.stderr()).toMatch(/task manager 1 .* joined/);
  }, 120_000);

  test('a task manager with TLS against a job manager without: refused, said on both sides', async () => {
    const port = await freePort();
    const jm = start(['run', job, '--listen', `127.0.0.1:${port}`, '--task-managers', '1', '--wait', '5s'], {
      TIDEMARK_TOKEN: 'a-token-of-some-length',
    });
    await until(() => jm.stderr().includes('waiting for'), 'the job manager to listen');
    const tm = start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, ...tlsFlags(tmCerts[0]!)]);
    expect(await tm.exit).toBe(1);
    expect(tm.stderr()).toMatch(
      new RegExp(
        `^tidemark: 127\\.0\\.0\\.1:${port} does not speak TLS: .*; give every process of the cluster the same TLS settings`,
      ),
    );
    expect(await jm.exit).toBe(1);
    expect(jm.stderr()).toMatch(
      /refused 127\.0\.0\.1:\d+: connection with 127\.0\.0\.1:\d+: the peer speaks TLS \(a TLS handshake\) and this process does not/,
    );
    expect(jm.stderr()).toMatch(/only 0 of 1 task managers joined within 5000 ms/);
  }, 60_000);

  test('bad TLS settings: one clear line naming the flag and the file, exit code 2', async () => {
    const missing = await runCli([
      'taskmanager',
      '--job-manager',
      '127.0.0.1:1',
      '--tls-cert',
      join(dir, 'nope.crt'),
      '--tls-key',
      jmCert.keyFile,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `tidemark: cannot read the TLS certificate (--tls-cert) from ${join(dir, 'nope.crt')}: ENOENT: no such file or directory, open '${join(dir, 'nope.crt')}'\n`,
    );
    const mismatch = await runCli([
      'taskmanager',
      '--job-manager',
      '127.0.0.1:1',
      '--tls-cert',
      jmCert.certFile,
      '--tls-key',
      tmCerts[0]!.keyFile,
    ]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toBe(
      `tidemark: the key ${tmCerts[0]!.keyFile} (--tls-key) is not the key of the certificate ${jmCert.certFile} (--tls-cert)\n`,
    );
    const notPem = await runCli([
      'taskmanager',
      '--job-manager',
      '127.0.0.1:1',
      ...tlsFlags(jmCert, jmCert.keyFile),
    ]);
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toBe(`tidemark: ${jmCert.keyFile} (--tls-ca) is not a PEM certificate\n`);
    const half = await runCli(['taskmanager', '--job-manager', '127.0.0.1:1', '--tls-cert', jmCert.certFile]);
    expect(half.code).toBe(2);
    expect(half.stderr).toBe('tidemark: --tls-cert and --tls-key go together: --tls-key is missing\n');
    const caOnly = await runCli(['taskmanager', '--job-manager', '127.0.0.1:1'], {
      env: { TIDEMARK_TLS_CA: jmCert.caFile },
    });
    expect(caOnly.code).toBe(2);
    expect(caOnly.stderr).toMatch(/^tidemark: --tls-ca needs --tls-cert and --tls-key too/);
    // TLS without a CA is not mutual: a token is still needed.
    const noToken = await runCli(
      [
        'taskmanager',
        '--job-manager',
        '127.0.0.1:1',
        '--tls-cert',
        jmCert.certFile,
        '--tls-key',
        jmCert.keyFile,
      ],
      { env: { TIDEMARK_TOKEN: '' } },
    );
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/needs a shared token of at least 8 characters .* or mutual TLS/);
  }, 60_000);
});
