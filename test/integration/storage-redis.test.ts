// Redis checkpoint storage: what only Redis has (ACL, TLS, connection failures, restarts, expiry,
// lost replies, the key layout and the scripts), against real redis-server processes.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  onTestFinished,
  test,
} from 'vitest';
import {
  CheckpointNotFoundError,
  CommitOutcomeUnknownError,
  FencedError,
  StorageError,
} from '../../state/storage/checkpoint-storage.js';
import { RedisCheckpointStorage, type RedisCheckpointStorageOptions } from '../../state/storage/redis.js';
import { storageScripts } from '../../state/storage/redis-scripts.js';
import { freePort, opensslAvailable, type RedisTestServer, startRedis } from '../setup/redis.js';
import { deleteRedisPrefix, redisChunkKey } from '../setup/storages.js';

const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;
const text = (s: string) => new TextEncoder().encode(s);

/** Keys under a prefix (SCAN). */
async function keysOf(client: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out.sort();
}

/** What `open()` threw (it must throw). */
async function openFailure(options: RedisCheckpointStorageOptions): Promise<StorageError> {
  const storage = new RedisCheckpointStorage(options);
  const e = await storage.open().then(
    () => undefined,
    (x: unknown) => x,
  );
  await storage.close();
  if (!(e instanceof StorageError)) throw new Error(`expected a StorageError from open(), got ${String(e)}`);
  return e;
}

describe('Redis storage on the shared server', () => {
  const url = inject('redisUrl');
  let prefix: string;
  let admin: Redis;
  const opened: RedisCheckpointStorage[] = [];
  const open = async (options: Partial<RedisCheckpointStorageOptions> = {}) => {
    const s = new RedisCheckpointStorage({ url, keyPrefix: prefix, ...options });
    await s.open();
    opened.push(s);
    return s;
  };

  beforeAll(async () => {
    admin = new Redis(url);
  });
  beforeEach(() => {
    prefix = `test-${randomUUID()}`;
  });
  afterAll(() => {
    admin.disconnect();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await deleteRedisPrefix(admin, prefix);
  });

  test('a damaged latest pointer: the newest stored checkpoint stands for it, in latest() and in the commit script', async () => {
    const s = await open();
    const epoch = await s.newEpoch('j');
    await s.commit('j', epoch, 1, text('m1'), [], { retain: 3 });
    await s.commit('j', epoch, 2, text('m2'), [], { retain: 3, savepoint: true });
    await s.commit('j', epoch, 3, text('m3'), [], { retain: 3 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      for (const garbage of ['garbage', '', '-1', '3.5']) {
        await admin.set(`${prefix}:{j}:latest`, garbage);
        expect(await s.latest('j')).toBe(3);
      }
      await new Promise((r) => setImmediate(r));
      expect(warnings).toEqual([
        `job 'j': the latest pointer ${prefix}:{j}:latest in ${s.description} is damaged (not a checkpoint id); using the newest stored checkpoint, 3`,
      ]);
      // Not newer than what the pointer stands for: stale, as with an intact pointer.
      await expect(s.commit('j', epoch, 3, text('again'), [])).rejects.toThrow(
        /not newer than the latest committed checkpoint 3/,
      );
      await s.commit('j', epoch, 4, text('m4'), [], { retain: 3 });
      expect(await admin.get(`${prefix}:{j}:latest`)).toBe('4');
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('every key of a job is in one hash slot, also for job ids with braces', async () => {
    const s = await open();
    for (const job of ['plain', 'with {braces}', '}leading', '{}', '%7B']) {
      const epoch = await s.newEpoch(job);
      await s.writeChunk(job, 'c1', new Uint8Array([1]));
      await s.writeChunk(job, 'abandoned', new Uint8Array([2]));
      await s.commit(job, epoch, 1, text('m'), ['c1']);
      await s.commit(job, epoch, 2, text('m'), ['c1'], { savepoint: true });
    }
    const keys = (await keysOf(admin, prefix)).filter((k) => k !== `${prefix}:jobs`);
    const byJob = new Map<string, Set<number>>();
    for (const key of keys) {
      const tag = key.slice(prefix.length + 1, key.indexOf('}') + 1);
      byJob.set(tag, (byJob.get(tag) ?? new Set()).add(calculateSlot(key)));
    }
    expect(byJob.size).toBe(5);
    for (const slots of byJob.values()) expect(slots.size).toBe(1);
    expect(keys).toContain(`${prefix}:{plain}:cp:1:meta`);
    expect(keys).toContain(`${prefix}:{with %7Bbraces%7D}:chunk:c1`);
    expect(new Set(await s.listJobs())).toEqual(new Set(['plain', 'with {braces}', '}leading', '{}', '%7B']));
  });

  test('chunks expire until a commit refers to them; a commit with an expired chunk is refused', async () => {
    // NOTE: a TTL that a loaded machine does not outlast between the writes and the checks below.
    const s = await open({ chunkTtlMs: 1500 });
    const job = 'j';
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'used', new Uint8Array([1]));
    await s.writeChunk(job, 'abandoned', new Uint8Array([2]));
    await s.writeChunk(job, 'late', new Uint8Array([3]));
    await s.commit(job, epoch, 1, text('m'), ['used']);
    expect(await admin.pttl(redisChunkKey(prefix, job, 'used'))).toBe(-1);
    expect(await admin.pttl(redisChunkKey(prefix, job, 'abandoned'))).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1600));
    expect(await admin.exists(redisChunkKey(prefix, job, 'abandoned'))).toBe(0);
    await expect(s.commit(job, epoch, 2, text('m'), ['used', 'late'])).rejects.toThrow(
      CheckpointNotFoundError,
    );
    expect(await s.latest(job)).toBe(1);
    expect(await s.readChunk(job, 'used')).toEqual(new Uint8Array([1]));
  });

  test('a failed command in a pipeline becomes a StorageError naming the operation', async () => {
    const s = await open();
    await admin.set(`${prefix}:{j}:savepoints`, 'not a sorted set');
    await expect(s.list('j')).rejects.toThrow(/list of job 'j' failed: WRONGTYPE/);
  });

  test('the scripts document every key they declare, and their names carry a version', () => {
    for (const script of Object.values(storageScripts())) {
      expect(script.name).toMatch(/^tidemark\w+:\d+$/);
      const declared = new Set([...script.lua.matchAll(/KEYS\[(\d+)\] \w/g)].map((m) => Number(m[1])));
      expect(declared.size).toBe(script.numberOfKeys);
      expect(Math.max(...declared)).toBe(script.numberOfKeys);
      expect(script.lua).not.toMatch(/@include/);
    }
    const files = readdirSync(new URL('../../state/storage/scripts/', import.meta.url)).filter((f) =>
      f.endsWith('.lua'),
    );
    for (const file of files) {
      const lua = readFileSync(new URL(`../../state/storage/scripts/${file}`, import.meta.url), 'utf8');
      expect(lua.startsWith('--[['), `${file} starts with its documented header`).toBe(true);
    }
  });
});

// NOTE: these pause writes on the server (CLIENT PAUSE), so they get a server of their own rather
// than stalling the other test files on the shared one.
describe('Redis storage: lost commit replies', () => {
  let server: RedisTestServer;
  let admin: Redis;
  const prefix = 'p';
  const opened: RedisCheckpointStorage[] = [];
  const open = async (options: Partial<RedisCheckpointStorageOptions> = {}) => {
    const s = new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix, ...options });
    await s.open();
    opened.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis({ port: server.port });
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await admin.flushall();
  });
  afterAll(async () => {
    admin.disconnect();
    await server.stop();
  });

  /**
   * Holds every write of the server until `CLIENT UNPAUSE` (or the end of the test). NOTE: not for
   * a fixed time, which a loaded machine could outlast before the command to hold was even sent.
   */
  const pauseWrites = async () => {
    await admin.call('CLIENT', 'PAUSE', '30000', 'WRITE');
    onTestFinished(async () => {
      await admin.call('CLIENT', 'UNPAUSE');
    });
  };

  /** Waits until the connection named `name` has sent a script (held by the pause); its client id. */
  const heldCommand = async (name: string): Promise<string> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const clients = (await admin.call('CLIENT', 'LIST')) as string;
      const line = clients.split('\n').find((l) => l.includes(`name=${name} `)) ?? '';
      const id = / cmd=eval/.test(line) ? /id=(\d+) /.exec(line)?.[1] : undefined;
      if (id !== undefined) return id;
      if (Date.now() > deadline) throw new Error(`no script from connection ${name} within 30 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  test('a lost commit reply is resolved: the commit ran after a timeout, so it succeeded', async () => {
    const name = `tm-${randomUUID()}`;
    const s = await open({ connectionName: name, commandTimeoutMs: 200, commitResolveTimeoutMs: 5000 });
    const job = 'j';
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'c', new Uint8Array([1]));
    // Scripts that write are held while the server is paused for writes: the commit times out.
    await pauseWrites();
    const started = Date.now();
    const commit = s.commit(job, epoch, 1, text('m1'), ['c']);
    await heldCommand(name);
    // Held for twice its timeout, then let through.
    await new Promise((r) => setTimeout(r, 400));
    await admin.call('CLIENT', 'UNPAUSE');
    await commit;
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(await s.latest(job)).toBe(1);
    expect(await s.readMetadata(job, 1)).toEqual(text('m1'));
  });

  test('a lost commit reply is resolved: the connection died before the commit ran, so it failed for good', async () => {
    const name = `tm-${randomUUID()}`;
    const s = await open({ connectionName: name, commitResolveTimeoutMs: 5000 });
    const job = 'j';
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'c', new Uint8Array([1]));
    await s.commit(job, epoch, 1, text('m1'), ['c']);
    await pauseWrites();
    const commit = s.commit(job, epoch, 2, text('m2'), ['c']).then(
      () => 'committed',
      (e: unknown) => e,
    );
    const id = await heldCommand(name);
    await admin.call('CLIENT', 'KILL', 'ID', id);
    await admin.call('CLIENT', 'UNPAUSE');
    const outcome = await commit;
    expect(outcome).toBeInstanceOf(StorageError);
    expect(String(outcome)).toMatch(/checked afterwards: it did not happen/);
    expect(await s.latest(job)).toBe(1);
    // The same checkpoint can be committed again (a new attempt has a new token).
    await s.commit(job, epoch, 2, text('m2 again'), ['c']);
    expect(await s.readMetadata(job, 2)).toEqual(text('m2 again'));
  });

  test('a lost commit reply that cannot be checked in time is reported as unknown, never guessed', async () => {
    const s = await open({ commandTimeoutMs: 150, commitResolveTimeoutMs: 600 });
    const job = 'j';
    const epoch = await s.newEpoch(job);
    await pauseWrites();
    const e = await s.commit(job, epoch, 1, text('m1'), []).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommitOutcomeUnknownError);
    expect(String(e)).toMatch(/outcome of the commit of checkpoint 1 is unknown/);
    // Had it been taken for a failure, that would have been wrong: the commit was only held.
    await admin.call('CLIENT', 'UNPAUSE');
    const deadline = Date.now() + 30_000;
    while ((await s.latest(job)) === undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(await s.latest(job)).toBe(1);
  });
});

describe('Redis storage: authentication and access', () => {
  let server: RedisTestServer;
  let admin: Redis;
  const password = 'default-Secret-42';
  const alicePassword = 'al1ce-Pa55word';

  beforeAll(async () => {
    server = await startRedis({
      password,
      users: [
        { name: 'alice', password: alicePassword },
        { name: 'reader', password: 'reader-pw', rules: ['~*', '+@read', '+info', '+client', '+ping'] },
        { name: 'other', password: 'other-pw', rules: ['~other:*', '+@all'] },
      ],
    });
    admin = new Redis({ port: server.port, password });
  });
  afterAll(async () => {
    admin.disconnect();
    await server.stop();
  });

  test('an ACL user from the URL works, and the description shows the user but never the password', async () => {
    const prefix = `test-${randomUUID()}`;
    const s = new RedisCheckpointStorage({
      url: `redis://alice:${encodeURIComponent(alicePassword)}@127.0.0.1:${server.port}`,
      keyPrefix: prefix,
    });
    expect(s.description).toBe(`redis://alice@127.0.0.1:${server.port} (prefix ${prefix})`);
    await s.open();
    const epoch = await s.newEpoch('j');
    await s.commit('j', epoch, 1, text('m'), []);
    expect(await s.latest('j')).toBe(1);
    await s.close();
    await deleteRedisPrefix(admin, prefix);
  });

  test('user name and password from the options work too', async () => {
    const s = new RedisCheckpointStorage({
      url: `redis://127.0.0.1:${server.port}`,
      username: 'alice',
      password: alicePassword,
      keyPrefix: `test-${randomUUID()}`,
    });
    await s.open();
    expect(await s.latest('j')).toBeUndefined();
    await s.close();
  });

  test('a wrong password gives one clear error without the password, and writes nothing', async () => {
    const before = await admin.dbsize();
    const wrong = 'Wrong-Passw0rd-123';
    const e = await openFailure({ url: `redis://alice:${wrong}@127.0.0.1:${server.port}` });
    expect(e.message).toBe(
      `cannot open Redis checkpoint storage redis://alice@127.0.0.1:${server.port} (prefix tidemark): authentication failed for user 'alice' (wrong user name or password, or the user is disabled)`,
    );
    const everything = inspect(e, { depth: 10 }) + JSON.stringify(e);
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(alicePassword);
    expect(await admin.dbsize()).toBe(before);
  });

  test('no password where one is required: NOAUTH, said plainly', async () => {
    const e = await openFailure({ url: `redis://127.0.0.1:${server.port}` });
    expect(e.message).toMatch(/the server requires a password and none was given/);
  });

  test('a user without the scripting commands, or without access to the prefix, is refused at open', async () => {
    const reader = await openFailure({ url: `redis://reader:reader-pw@127.0.0.1:${server.port}` });
    expect(reader.message).toMatch(/user 'reader' lacks a permission it needs/);
    const other = await openFailure({ url: `redis://other:other-pw@127.0.0.1:${server.port}` });
    expect(other.message).toMatch(/user 'other' lacks a permission it needs \(keys 'tidemark:\*'/);
  });
});

describe('Redis storage: connection failures', () => {
  test('an unreachable port fails fast with one clear error', async () => {
    const port = await freePort();
    const started = Date.now();
    const e = await openFailure({ url: `redis://127.0.0.1:${port}` });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(e.message).toBe(
      `cannot open Redis checkpoint storage redis://127.0.0.1:${port} (prefix tidemark): connection refused (is redis-server running there?)`,
    );
  });

  test('cluster mode against seeds that are down, and against a server that is not a cluster', async () => {
    const port = await freePort();
    const down = await openFailure({ url: `redis://127.0.0.1:${port}?cluster=1` });
    expect(down.message).toMatch(/none of the seed nodes accepts connections/);
    const single = await openFailure({ url: `${inject('redisUrl')}?cluster=1` });
    expect(single.message).toMatch(/the server is not a Redis Cluster \(drop \?cluster=1/);
  });

  test('a malformed URL is refused without showing the password', () => {
    expect(() => new RedisCheckpointStorage({ url: 'redis://u:hunter22@host:99999' })).toThrow(
      "invalid Redis URL 'redis://u:***@host:99999': bad port in 'host:99999'",
    );
    expect(() => new RedisCheckpointStorage({ url: 'redis://a:1,b:2' })).toThrow(
      /several hosts need \?cluster=1/,
    );
    expect(() => new RedisCheckpointStorage({ url: 'redis://a:1?clustr=1' })).toThrow(
      /unknown parameter 'clustr'/,
    );
  });

  test('Redis killed (no persistence) between chunk writes and the commit: the commit fails cleanly', async () => {
    const server = await startRedis();
    const s = new RedisCheckpointStorage({ url: server.url, keyPrefix: 'p', connectTimeoutMs: 1000 });
    try {
      await s.open();
      const epoch = await s.newEpoch('j');
      await s.writeChunk('j', 'c', new Uint8Array([1]));
      await server.kill();
      // The next command finds the connection gone.
      await expect(s.latest('j')).rejects.toThrow(StorageError);
      // While it is down: a definite failure (nothing sent), quickly.
      const started = Date.now();
      await expect(s.commit('j', epoch, 1, text('m'), ['c'])).rejects.toThrow(
        /nothing was sent|not connected/,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      await server.restart();
      // Back, but empty: the epoch is unknown now, so the commit is refused; nothing is latest.
      await expect(s.commit('j', epoch, 1, text('m'), ['c'])).rejects.toThrow(/epoch 1 was never issued/);
      expect(await s.latest('j')).toBeUndefined();
    } finally {
      await s.close();
      await server.stop();
    }
  });

  test('Redis killed and restarted with its data (append-only file): the commit goes through after reconnecting', async () => {
    const server = await startRedis({ persistence: true });
    const s = new RedisCheckpointStorage({ url: server.url, keyPrefix: 'p', connectTimeoutMs: 1000 });
    try {
      await s.open();
      const epoch = await s.newEpoch('j');
      await s.writeChunk('j', 'c0', new Uint8Array([0]));
      await s.commit('j', epoch, 1, text('m1'), ['c0']);
      await s.writeChunk('j', 'c', new Uint8Array([1]));
      await server.kill();
      await server.restart();
      await s.commit('j', epoch, 2, text('m2'), ['c0', 'c']);
      expect(await s.latest('j')).toBe(2);
      expect(await s.readChunk('j', 'c')).toEqual(new Uint8Array([1]));
      // Fencing survives the restart too.
      const admin = new Redis({ port: server.port });
      expect(await admin.get('p:{j}:epoch')).toBe(String(epoch));
      admin.disconnect();
      await expect(s.commit('j', epoch - 1, 3, text('m3'), [])).rejects.toThrow(
        epoch > 1 ? FencedError : StorageError,
      );
    } finally {
      await s.close();
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable())('Redis storage over TLS', () => {
  let tlsServer: RedisTestServer;
  let plainServer: RedisTestServer;

  beforeAll(async () => {
    tlsServer = await startRedis({ tls: true });
    plainServer = await startRedis();
  });
  afterAll(async () => {
    await tlsServer?.stop();
    await plainServer?.stop();
  });

  test('rediss:// with the CA works', async () => {
    const s = new RedisCheckpointStorage({
      url: tlsServer.url,
      tls: { ca: tlsServer.tls?.ca ?? '' },
      keyPrefix: `test-${randomUUID()}`,
    });
    expect(s.description).toMatch(/^rediss:\/\//);
    await s.open();
    const epoch = await s.newEpoch('j');
    await s.writeChunk('j', 'c', new Uint8Array([1, 2]));
    await s.commit('j', epoch, 1, text('m'), ['c']);
    expect(await s.readChunk('j', 'c')).toEqual(new Uint8Array([1, 2]));
    await s.close();
  });

  test('an untrusted certificate is a clear error', async () => {
    const e = await openFailure({ url: tlsServer.url });
    expect(e.message).toMatch(
      /TLS certificate was rejected \(self-signed certificate in certificate chain\)/,
    );
  });

  test('redis:// to a TLS-only server is a clear error', async () => {
    const e = await openFailure({ url: `redis://127.0.0.1:${tlsServer.port}` });
    expect(e.message).toMatch(
      /closed the connection during the handshake; a TLS-only server\? \(use rediss:\/\/\)/,
    );
  });

  test('rediss:// to a plain-text server is a clear error, within the connect timeout', async () => {
    const started = Date.now();
    const e = await openFailure({ url: `rediss://127.0.0.1:${plainServer.port}`, connectTimeoutMs: 800 });
    expect(Date.now() - started).toBeLessThan(4000);
    expect(e.message).toMatch(/the server probably does not speak TLS \(use redis:\/\/\)/);
    const admin = new Redis({ port: plainServer.port });
    expect(await admin.dbsize()).toBe(0);
    admin.disconnect();
  });
});
