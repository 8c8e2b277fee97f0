// The wire between hosts, secured: TLS (mutual with a CA) on every connection, what is refused and
// how it is said on both sides, refusals logged once per address (not once per connection), and a
// peer that sends part of a frame and stalls is cut off after the frame timeout.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Hello } from '../../runtime/distributed/protocol.js';
import { TaskManagerPool } from '../../runtime/distributed/task-manager.js';
import {
  type ClusterTlsOptions,
  checkAuthentication,
  connectPeer,
  type Link,
  type ListenOptions,
  listenPeers,
} from '../../runtime/distributed/wire.js';
import { encode } from '../../state/snapshot/format.js';
import { waitFor } from '../helpers/jobs.js';
import { makeTestCa, type TestCertificate } from '../setup/certificates.js';
import { opensslAvailable } from '../setup/redis.js';

const TOKEN = 'wire-security-token';
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 10 });
}

let jm: TestCertificate;
let tm: TestCertificate;
let stranger: TestCertificate;
beforeAll(() => {
  if (!opensslAvailable()) return;
  const ca = makeTestCa('tidemark cluster CA');
  jm = ca.issue('job manager');
  tm = ca.issue('task manager');
  stranger = makeTestCa('another CA').issue('task manager');
});

const mutual = (c: TestCertificate, ca = c.ca): ClusterTlsOptions => ({ cert: c.cert, key: c.key, ca });

/** A server of peers (as a job manager's or a task manager's data port), and what it got. */
async function peers(options: Omit<ListenOptions, 'log'>, token = TOKEN) {
  const log: string[] = [];
  const joined: { link: Link; hello: Hello }[] = [];
  const messages: unknown[] = [];
  const server = await listenPeers(
    { host: '127.0.0.1', port: 0 },
    token,
    { ...options, log: (l) => log.push(l) },
    (link, hello) => {
      joined.push({ link, hello });
      link.on('error', () => {});
      link.on('message', (m: unknown) => messages.push(m));
      closers.push(() => link.close());
    },
  );
  closers.push(() => server.close());
  return { port: (server.address() as { port: number }).port, log, joined, messages, server };
}

/** A TCP proxy to `port` that keeps every byte that passes, both ways. */
async function sniffingProxy(port: number): Promise<{ port: number; bytes: () => Buffer }> {
  const seen: Buffer[] = [];
  const server: Server = createServer((client: Socket) => {
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => server.close());
  return { port: (server.address() as { port: number }).port, bytes: () => Buffer.concat(seen) };
}

const MARKER = 'a-record-nobody-may-read-0123456789';

describe.skipIf(!opensslAvailable())('TLS between hosts', () => {
  test('mutual TLS: the handshake and the records cross encrypted (a proxy in the middle reads neither)', async () => {
    for (const tls of [undefined, true]) {
      const server = await peers(tls ? { tls: mutual(jm) } : {});
      const proxy = await sniffingProxy(server.port);
      const link = await connectPeer(
        '127.0.0.1',
        proxy.port,
        TOKEN,
        { role: 'peer', from: 3 },
        tls ? { tls: mutual(tm) } : {},
      );
      closers.push(() => link.close());
      link.send({ deployment: 1, from: 3, to: 0, message: { record: MARKER } });
      await until(() => server.messages.length === 1, 'the message');
      expect(server.messages).toEqual([{ deployment: 1, from: 3, to: 0, message: { record: MARKER } }]);
      expect(server.joined[0]!.hello).toMatchObject({ role: 'peer', from: 3 });
      const wire = proxy.bytes();
      if (tls) {
        // TLS records (a handshake first), and nothing of what was said.
        expect(wire.subarray(0, 2)).toEqual(Buffer.from([0x16, 0x03]));
        expect(wire.includes(MARKER)).toBe(false);
        expect(wire.includes('tidemark/1')).toBe(false);
        expect(wire.includes('peer')).toBe(false);
      } else {
        // The same without TLS: the proxy reads it all (the check above can fail).
        expect(wire.includes(MARKER)).toBe(true);
        expect(wire.includes('tidemark/1')).toBe(true);
      }
      expect(server.log).toEqual([]);
    }
  });

  test('with mutual TLS the token may be left out (the CA authenticates); without TLS it may not', async () => {
    const server = await peers({ tls: mutual(jm) }, '');
    const link = await connectPeer(
      '127.0.0.1',
      server.port,
      '',
      { role: 'peer', from: 0 },
      { tls: mutual(tm) },
    );
    link.close();
    expect(() => checkAuthentication('', undefined)).toThrow(
      'connections between hosts must be authenticated: give a shared token (at least 8 characters) or mutual TLS (a CA)',
    );
    expect(() => checkAuthentication('', { cert: tm.cert, key: tm.key })).toThrow(/must be authenticated/);
    expect(() => checkAuthentication('short', mutual(tm))).toThrow(
      'the shared token must have at least 8 characters',
    );
    await expect(TaskManagerPool.listen('127.0.0.1:1', '', 1)).rejects.toThrow(/must be authenticated/);
  });

  test('TLS without a CA: the connecting side checks the certificate against the system CAs (a private one fails)', async () => {
    const server = await peers({ tls: { cert: jm.cert, key: jm.key } });
    await expect(
      connectPeer(
        '127.0.0.1',
        server.port,
        TOKEN,
        { role: 'peer', from: 0 },
        { tls: { cert: tm.cert, key: tm.key } },
      ),
    ).rejects.toThrow(
      new RegExp(
        `^the TLS certificate of 127\\.0\\.0\\.1:${server.port} was not accepted: .*\\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)`,
      ),
    );
  });

  test('a certificate of another CA is refused, said on both sides', async () => {
    const server = await peers({ tls: mutual(jm) });
    // It trusts the cluster's CA (anybody can have the CA's certificate), but its own certificate
    // was signed by another CA.
    const attempt = connectPeer(
      '127.0.0.1',
      server.port,
      TOKEN,
      { role: 'taskmanager', slots: 1, dataHost: '', dataPort: 1 },
      { tls: mutual(stranger, jm.ca) },
    );
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `^127\\.0\\.0\\.1:${server.port} refused the connection: this process's TLS certificate was not accepted \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)`,
      ),
    );
    await until(() => server.log.length === 1, 'the refusal in the log');
    expect(server.log[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: its TLS certificate was not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): it must be signed by the CA of the peer's --tls-ca$/,
    );
    expect(server.joined).toEqual([]);
  });

  test('a job manager whose certificate the task manager does not trust: refused by the task manager', async () => {
    const server = await peers({ tls: mutual(jm) });
    const attempt = connectPeer(
      '127.0.0.1',
      server.port,
      TOKEN,
      { role: 'peer', from: 0 },
      { tls: mutual(tm, stranger.ca) },
    );
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `^the TLS certificate of 127\\.0\\.0\\.1:${server.port} was not accepted: .* \\(SELF_SIGNED_CERT_IN_CHAIN\\); it must be signed by the CA of --tls-ca$`,
      ),
    );
    await until(() => server.log.length === 1, 'the refusal in the log');
    expect(server.log[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: it closed the connection during the TLS handshake/,
    );
  });

  test('TLS on one side only: refused at once, and both sides say TLS', async () => {
    // A peer without TLS against a TLS server.
    const secure = await peers({ tls: mutual(jm) });
    const started = Date.now();
    await expect(connectPeer('127.0.0.1', secure.port, TOKEN, { role: 'peer', from: 0 })).rejects.toThrow(
      new RegExp(
        `^127\\.0\\.0\\.1:${secure.port} closed the connection during the handshake \\(does it use TLS\\? then this process needs the same TLS settings: --tls-cert, --tls-key, --tls-ca\\)$`,
      ),
    );
    // At once, not after the handshake timeout.
    expect(Date.now() - started).toBeLessThan(5000);
    await until(() => secure.log.length === 1, 'the refusal in the log');
    expect(secure.log[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+ does not speak TLS: wrong version number \(ERR_SSL_WRONG_VERSION_NUMBER\); give every process of the cluster the same TLS settings/,
    );
    // A TLS peer against a server without TLS.
    const plain = await peers({});
    await expect(
      connectPeer('127.0.0.1', plain.port, TOKEN, { role: 'peer', from: 0 }, { tls: mutual(tm) }),
    ).rejects.toThrow(
      new RegExp(
        `^127\\.0\\.0\\.1:${plain.port} does not speak TLS: .*; give every process of the cluster the same TLS settings`,
      ),
    );
    await until(() => plain.log.length === 1, 'the refusal in the log');
    expect(plain.log[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: connection with 127\.0\.0\.1:\d+: the peer speaks TLS \(a TLS handshake\) and this process does not: give every process of the cluster the same TLS settings/,
    );
  });
});

describe('refused and malformed connections', () => {
  test('1000 connections of garbage to a job manager: two lines of log, and a task manager still joins', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const log: string[] = [];
    const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, TOKEN, 1, {
      log: (l) => log.push(l),
      refusalLogIntervalMs: 2000,
    });
    await sleep(100);
    const garbage = (i: number) =>
      new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.write(
            i % 2 === 0
              ? 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
              : Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
          );
        });
        s.on('error', () => {});
        s.resume();
        s.on('close', () => resolve());
      });
    const started = Date.now();
    for (let i = 0; i < 1000; i += 50)
      await Promise.all(Array.from({ length: 50 }, (_x, j) => garbage(i + j)));
    const elapsed = Date.now() - started;
    // Each was closed by the job manager (the promises above resolved). The first is logged as it
    // comes, the others counted and said in one line when the interval ends.
    const refused = () => log.filter((l) => l.startsWith('refused ') || / more connection/.test(l));
    await until(() => refused().some((l) => / more connection/.test(l)), 'the summary line');
    await sleep(2500);
    const lines = refused();
    expect(lines[0]).toMatch(/^refused 127\.0\.0\.1:\d+: /);
    expect(lines[1]).toMatch(
      /^\d+ more connection\(s\) from 127\.0\.0\.1 refused in the last 2 s; the last: refused 127\.0\.0\.1:\d+: /,
    );
    // Every connection counted once; two lines per interval at most (two in all, unless this
    // machine took more than an interval to make the 1000 connections).
    const total = lines.reduce(
      (n, l) => n + (l.startsWith('refused ') ? 1 : Number(/^(\d+)/.exec(l)![1])),
      0,
    );
    expect(total).toBe(1000);
    expect(lines.length).toBeLessThanOrEqual(2 * (Math.floor(elapsed / 2000) + 1));
    if (elapsed < 1500) expect(lines).toHaveLength(2);
    // Still listening: a task manager joins.
    const joining = connectPeer('127.0.0.1', port, TOKEN, {
      role: 'taskmanager',
      slots: 1,
      dataHost: '127.0.0.1',
      dataPort: 1,
    });
    const pool = await listening;
    closers.push(() => pool.close());
    const link = await joining;
    closers.push(() => link.close());
    expect(pool.slots).toBe(1);
    expect(log.filter((l) => /task manager 1 .* joined/.test(l))).toHaveLength(1);
  });

  test('text and oversized frames are named for what they are', async () => {
    const server = await peers({});
    const send = (bytes: Buffer | string) =>
      new Promise<void>((resolve) => {
        const s = connect(server.port, '127.0.0.1', () => s.write(bytes));
        s.on('error', () => {});
        s.resume();
        s.on('close', () => resolve());
      });
    await send('GET / HTTP/1.1\r\n\r\n');
    await until(() => server.log.length === 1, 'the refusal');
    expect(server.log[0]).toMatch(/: not a tidemark peer: it sent text \("GET \/ HTTP\/1\.1\\r\\n/);
  });

  test('a frame of more than 64 KiB before the handshake is refused', async () => {
    const server = await peers({});
    await new Promise<void>((resolve) => {
      const s = connect(server.port, '127.0.0.1', () => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(1024 * 1024, 0);
        s.write(head);
      });
      s.on('error', () => {});
      s.resume();
      s.on('close', () => resolve());
    });
    await until(() => server.log.length === 1, 'the refusal');
    expect(server.log[0]).toMatch(/a frame of 1048576 bytes is larger than the limit of 65536/);
  });

  test('a peer that sends part of a frame and stalls is closed after the frame timeout; one that goes on slowly is not', async () => {
    const log: string[] = [];
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, TOKEN, 1, {
      log: (l) => log.push(l),
      frameTimeoutMs: 300,
    });
    listening.catch(() => {});
    await sleep(100);
    // Before the handshake: a frame header that promises 100 bytes, then 10 of them, then nothing.
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.resume();
    let closedAt = 0;
    s.on('close', () => (closedAt = Date.now()));
    await new Promise((r) => s.once('connect', r));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(100, 0);
    s.write(Buffer.concat([head, Buffer.alloc(10)]));
    const sentAt = Date.now();
    await until(() => closedAt > 0, 'the job manager to close the connection');
    expect(closedAt - sentAt).toBeGreaterThanOrEqual(250);
    // Well before the handshake timeout (10 s).
    expect(closedAt - sentAt).toBeLessThan(8000);
    await until(() => log.length === 1, 'the log line');
    expect(log[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: connection with 127\.0\.0\.1:\d+: an incomplete frame \(10 of 100 bytes\) and nothing more for \d+ ms; closing it$/,
    );

    // After the handshake: a frame that comes a few bytes every 100 ms goes through; a stalled
    // one is cut off.
    const server = await peers({ frameTimeoutMs: 300 });
    const link = await connectPeer('127.0.0.1', server.port, TOKEN, { role: 'peer', from: 0 });
    closers.push(() => link.close());
    const body = encode({ slow: 'x'.repeat(40) });
    const frame = Buffer.concat([Buffer.alloc(4), body]);
    frame.writeUInt32BE(body.length, 0);
    for (let i = 0; i < frame.length; i += 8) {
      link.socket.write(frame.subarray(i, i + 8));
      await sleep(100);
    }
    await until(() => server.messages.length === 1, 'the slow frame');
    expect(server.messages[0]).toEqual({ slow: 'x'.repeat(40) });
    let closed = false;
    link.on('close', () => (closed = true));
    link.on('error', () => {});
    link.socket.write(frame.subarray(0, 6));
    await until(() => closed, 'the stalled connection to close');
  });
});
