/**
 * Real Redis servers for tests: `startRedis` runs `redis-server` on a free port with its own
 * temporary directory (optionally with a password, ACL users, TLS only, or persistence), and
 * `startRedisCluster` runs a small local Redis Cluster. Every server started here is killed when the
 * test process exits, even after a failure.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An ACL user to create on a test server. */
export interface RedisTestUser {
  name: string;
  password: string;
  /** ACL rules after `on >password`; default: every key, channel and command. */
  rules?: string[];
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** `requirepass` for the default user. */
  password?: string;
  /** ACL users to create. */
  users?: RedisTestUser[];
  /** Disable the default user (only the `users` can log in). */
  disableDefaultUser?: boolean;
  /** Serve TLS only (no plain-text port); needs openssl (see {@link opensslAvailable}). */
  tls?: boolean;
  /** Append-only file on, so data survives `kill()` + `restart()`. */
  persistence?: boolean;
  /** `cluster-enabled yes` (used by {@link startRedisCluster}). */
  clusterEnabled?: boolean;
  /** The port to use (default: a free one). */
  port?: number;
  /**
   * The address to listen on and to put in the URL (default 127.0.0.1). Another address (one a
   * test network gives the root namespace, say) turns Redis's protected mode off.
   */
  host?: string;
  /** More `redis-server` arguments. */
  args?: string[];
}

/** Files of a self-signed test certificate authority and a server certificate signed by it. */
export interface TestTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: string;
}

/** A running test `redis-server`. */
export interface RedisTestServer {
  /** `redis://<host>:<port>` (`rediss://` with TLS), without credentials. */
  url: string;
  host: string;
  port: number;
  /** Its temporary directory (data, append-only file). */
  dir: string;
  /** The certificates when started with `tls`. */
  tls: TestTlsFiles | undefined;
  /** Shuts it down (SIGTERM) and removes its directory; the server cannot be restarted after. */
  stop(): Promise<void>;
  /** Kills it (SIGKILL) and keeps its directory, for `restart()`. */
  kill(): Promise<void>;
  /**
   * Shuts it down as an operator would (`systemctl stop`, `redis-cli shutdown`: SIGTERM, on which
   * Redis writes its append-only file or snapshot before it exits) and keeps its directory, for
   * `restart()`.
   */
  shutdown(): Promise<void>;
  /** Starts it again on the same port and directory (after `kill()` or `shutdown()`). */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // NOTE: 'exit' handlers must be synchronous: SIGKILL every server still running and remove
  // the temporary directories, so a crashed or interrupted test run leaves no redis-server behind.
  const cleanUp = () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanUp);
  // NOTE: a signal's default action ends the process without 'exit': clean up, then let the
  // signal act as it would have (only when nobody else handles it, so vitest keeps its own handling).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    if (process.listenerCount(signal) > 0) continue;
    const onSignal = () => {
      cleanUp();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function commandExists(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Whether `redis-server` is installed. */
export function redisServerAvailable(): boolean {
  return commandExists('redis-server', ['--version']);
}

/** Whether `openssl` is installed (needed for the TLS tests). */
export function opensslAvailable(): boolean {
  return commandExists('openssl', ['version']);
}

/** A TCP port on 127.0.0.1 that was free a moment ago (and, if asked, whose `port + offset` was too). */
export async function freePort(alsoFreeOffset?: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port =
      alsoFreeOffset === undefined ? await listenOnce(0) : 20_000 + Math.floor(Math.random() * 30_000);
    if (alsoFreeOffset === undefined) return port;
    if ((await portIsFree(port)) && (await portIsFree(port + alsoFreeOffset))) return port;
  }
  throw new Error('no free port found');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const chosen = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(chosen));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  try {
    await listenOnce(port);
    return true;
  } catch {
    return false;
  }
}

let tlsFiles: TestTlsFiles | undefined;

/** Generates (once per process) a test CA and a server certificate for 127.0.0.1 and localhost. */
export function testTlsFiles(): TestTlsFiles {
  if (tlsFiles !== undefined) return tlsFiles;
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-tls-'));
  tempDirs.add(dir);
  installExitHook();
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    '/CN=tidemark test CA',
    '-days',
    '2',
  ]);
  run(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\n" > san.ext'], { cwd: dir });
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  ]);
  const caFile = join(dir, 'ca.crt');
  tlsFiles = {
    caFile,
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    ca: readFileSync(caFile, 'utf8'),
  };
  return tlsFiles;
}

function serverArgs(port: number, dir: string, options: StartRedisOptions, tls: TestTlsFiles | undefined) {
  const host = options.host ?? '127.0.0.1';
  const args = [
    '--bind',
    host,
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.persistence ? 'yes' : 'no',
    '--daemonize',
    'no',
    '--logfile',
    '',
    '--loglevel',
    'notice',
  ];
  if (host !== '127.0.0.1') args.push('--protected-mode', 'no');
  if (options.persistence) args.push('--appendfsync', 'always');
  if (tls === undefined) args.push('--port', String(port));
  else
    args.push(
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      tls.certFile,
      '--tls-key-file',
      tls.keyFile,
      '--tls-ca-cert-file',
      tls.caFile,
      '--tls-auth-clients',
      'no',
    );
  if (options.password !== undefined) args.push('--requirepass', options.password);
  for (const user of options.users ?? [])
    args.push('--user', user.name, 'on', `>${user.password}`, ...(user.rules ?? ['~*', '&*', '+@all']));
  if (options.disableDefaultUser) args.push('--user', 'default', 'off');
  if (options.clusterEnabled)
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'));
  args.push(...(options.args ?? []));
  return args;
}

function spawnServer(args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let log = '';
    let settled = false;
    const timer = setTimeout(
      () => fail(new Error(`redis-server did not start within 10 s:\n${log}`)),
      10_000,
    );
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      live.delete(child);
      reject(e);
    };
    const onData = (data: Buffer) => {
      log += data.toString();
      if (!settled && log.includes('Ready to accept connections')) {
        settled = true;
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (e) => fail(e));
    child.once('exit', (code, signal) => {
      live.delete(child);
      fail(new Error(`redis-server exited (${code ?? signal}) while starting:\n${log}`));
    });
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts a `redis-server` for a test; call `stop()` in `afterAll`/`afterEach`. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisTestServer> {
  installExitHook();
  const tls = options.tls ? testTlsFiles() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-redis-'));
  tempDirs.add(dir);
  let child: ChildProcess | undefined;
  let port = options.port ?? 0;
  for (let attempt = 0; child === undefined; attempt++) {
    if (options.port === undefined) port = await freePort(options.clusterEnabled ? 10_000 : undefined);
    try {
      child = await spawnServer(serverArgs(port, dir, options, tls));
    } catch (e) {
      // NOTE: the free port may have been taken between the check and the start: try another.
      if (attempt >= 4 || options.port !== undefined || !String(e).includes('in use')) {
        rmSync(dir, { recursive: true, force: true });
        tempDirs.delete(dir);
        throw e;
      }
    }
  }
  let current: ChildProcess | undefined = child;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `${tls === undefined ? 'redis' : 'rediss'}://${host}:${port}`,
    host,
    port,
    dir,
    tls,
    async stop() {
      if (current !== undefined) {
        const c = current;
        current = undefined;
        c.kill('SIGTERM');
        const killTimer = setTimeout(() => c.kill('SIGKILL'), 3000);
        await waitForExit(c);
        clearTimeout(killTimer);
        live.delete(c);
      }
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
    async kill() {
      if (current === undefined) return;
      const c = current;
      current = undefined;
      c.kill('SIGKILL');
      await waitForExit(c);
      live.delete(c);
    },
    async shutdown() {
      if (current === undefined) return;
      const c = current;
      current = undefined;
      c.kill('SIGTERM');
      await waitForExit(c);
      live.delete(c);
    },
    async restart() {
      if (current !== undefined) throw new Error('restart(): the server is still running (kill() it first)');
      current = await spawnServer(serverArgs(port, dir, options, tls));
    },
  };
}

/** A running local Redis Cluster. */
export interface RedisTestCluster {
  /** `redis://127.0.0.1:<p1>,127.0.0.1:<p2>,...?cluster=1` */
  url: string;
  nodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Starts a Redis Cluster of `masters` nodes (no replicas) and waits until every slot is served. */
export async function startRedisCluster(masters = 3): Promise<RedisTestCluster> {
  const servers: RedisTestServer[] = [];
  try {
    for (let i = 0; i < masters; i++) servers.push(await startRedis({ clusterEnabled: true }));
    const addresses = servers.map((s) => `${s.host}:${s.port}`);
    await new Promise<void>((resolve, reject) => {
      const cli = spawn('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-yes'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      cli.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      cli.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      cli.once('error', reject);
      cli.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create failed:\n${out}`)),
      );
    });
    const deadline = Date.now() + 20_000;
    for (const server of servers) {
      for (;;) {
        const info = execFileSync('redis-cli', ['-p', String(server.port), 'cluster', 'info'], {
          encoding: 'utf8',
        });
        if (info.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`the test cluster did not become ready:\n${info}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return {
      url: `redis://${addresses.join(',')}?cluster=1`,
      nodes: servers.map((s) => ({ host: s.host, port: s.port })),
      async stop() {
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    throw e;
  }
}
