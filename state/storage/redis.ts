/**
 * {@link RedisCheckpointStorage}: checkpoints in Redis (a single server or a Redis Cluster), with
 * ioredis.
 *
 * Key layout, every key of a job inside the hash tag `{<job>}` so that a job lives in one cluster
 * slot and one Lua script can commit it (`<job>` is the job id with `%`, `{` and `}` percent-encoded):
 * ```
 * <prefix>:jobs                          set of (encoded) job ids that ever committed (listJobs filters)
 * <prefix>:{<job>}:epoch                 the current epoch (absent = 0)
 * <prefix>:{<job>}:latest                id of the latest committed checkpoint
 * <prefix>:{<job>}:checkpoints           sorted set of stored checkpoint ids (score = id)
 * <prefix>:{<job>}:savepoints            sorted set of stored savepoint ids (score = id)
 * <prefix>:{<job>}:refs                  hash: chunk id -> number of stored checkpoints referring to it
 * <prefix>:{<job>}:cp:<id>:meta          metadata bytes, as given
 * <prefix>:{<job>}:cp:<id>:chunks        set of the chunk ids the checkpoint refers to
 * <prefix>:{<job>}:cp:<id>:info          hash: timestamp, sizeBytes, chunkCount, savepoint, token, epoch
 * <prefix>:{<job>}:chunk:<chunk id>      a chunk: 16-byte header + payload (chunk-format.ts)
 * <prefix>:{<job>}:aborted:<token>       marks a commit declared failed (expires after a day)
 * <prefix>:{<job>}:leader                the job's leader lease: its holder's record (JSON), expiring
 * <prefix>:{<job>}:leader-generation     how many times the lease was taken
 * <prefix>:{<job>}:run                   the job's run record (JSON, see leases.ts)
 * ```
 * Chunks are written with an expiry (`chunkTtlMs`), so the chunks of an abandoned checkpoint expire
 * on their own; the commit script persists the chunks it refers to, and retention deletes a chunk
 * when its reference count drops to zero. The scripts are in `scripts/` (see their headers).
 */
import { createHash, randomUUID } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { TidemarkError } from '../errors.js';
import {
  type CheckpointInfo,
  CheckpointNotFoundError,
  type CheckpointStorage,
  type CommitOptions,
  CommitOutcomeUnknownError,
  FencedError,
  StaleCheckpointError,
  StorageError,
  type StorageSpec,
} from './checkpoint-storage.js';
import { CHUNK_HEADER_BYTES, decodeChunk, encodeChunk } from './chunk-format.js';
import {
  asUint8Array,
  checkChunkData,
  checkChunkId,
  checkCount,
  checkJobId,
  immutableChunkError,
  missingChunkError,
  normalizeRetain,
  uniqueChunkIds,
  unknownEpochError,
} from './common.js';
import { ioredis } from './ioredis.js';
import {
  type LeaderRecord,
  type LeaseAttempt,
  type LeaseStore,
  parseLeaderRecord,
  parseRunRecord,
} from './leases.js';
import { type StorageScript, storageScripts } from './redis-scripts.js';

/** TLS settings of a Redis connection (`rediss://` turns TLS on with the system's CAs). */
export interface RedisTlsOptions {
  /** Certificate authorities to trust (PEM), e.g. a self-signed CA. */
  ca?: string | Buffer | (string | Buffer)[];
  /** Client certificate (PEM), when the server asks for one. */
  cert?: string | Buffer;
  /** Client key (PEM). */
  key?: string | Buffer;
  /** Verify the server's certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Server name for SNI and certificate checks (default: the host). */
  servername?: string;
}

/** A Redis server address. */
export interface RedisNode {
  host: string;
  port: number;
}

/** Options of {@link RedisCheckpointStorage}. */
export interface RedisCheckpointStorageOptions {
  /**
   * `redis://[user[:password]@]host[:port][/db][?cluster=1&prefix=name]` or `rediss://...` for TLS.
   * For a cluster, several comma-separated `host:port` seeds: `redis://h1:7000,h2:7001?cluster=1`.
   */
  url?: string;
  /** Seed nodes (instead of, or to override, the URL's hosts). */
  nodes?: RedisNode[];
  /** Connect to a Redis Cluster (also `?cluster=1` in the URL). */
  cluster?: boolean;
  /** ACL user name (overrides the URL's). */
  username?: string;
  /** Password (overrides the URL's); never printed. */
  password?: string;
  /** TLS: `true` (system CAs) or settings; implied by `rediss://`. */
  tls?: boolean | RedisTlsOptions;
  /** Database number (single server only; overrides the URL's path). */
  db?: number;
  /** First part of every key (default `tidemark`; also `?prefix=` in the URL). Must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Bound of a connection attempt, TLS handshake included (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Bound of one command (default 30000 ms); a commit that times out is resolved, not guessed. */
  commandTimeoutMs?: number;
  /** Expiry of a chunk until a commit refers to it (default 1 hour). */
  chunkTtlMs?: number;
  /** How long to keep trying to learn the outcome of a commit whose reply was lost (default 15000 ms). */
  commitResolveTimeoutMs?: number;
  /** The connection name shown by `CLIENT LIST` (default `tidemark`). */
  connectionName?: string;
}

/** What a `redis://` / `rediss://` URL says. */
export interface ParsedRedisUrl {
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  nodes: RedisNode[];
  db: number | undefined;
  cluster: boolean;
  keyPrefix: string | undefined;
}

/**
 * Parses a `redis://` or `rediss://` URL (user info percent-decoded; several comma-separated hosts
 * for a cluster; query `cluster` and `prefix`). Throws a {@link StorageError} without the password.
 */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  const m = /^(redis|rediss):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(url);
  const shown = redactUrl(url);
  const bad = (detail: string) => new StorageError(`invalid Redis URL '${shown}': ${detail}`);
  // NOTE: a password with an unencoded '@', '/', '?' or '#' would be parsed as part of the host,
  // path or query, and the pieces shown in the error below: refused first, showing nothing of it.
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  if (authority.split('@').length > 2 || rest.slice(authority.length).includes('@'))
    throw bad(
      "an '@' where none can be: percent-encode '@', '/', '?' and '#' in the user name, password and prefix (%40, %2F, %3F, %23)",
    );
  if (m === null) throw bad('expected redis://[user[:password]@]host[:port][/db][?cluster=1&prefix=name]');
  const [, scheme = 'redis', userInfo, hostList = '', path, query] = m;
  let username: string | undefined;
  let password: string | undefined;
  if (userInfo !== undefined) {
    const colon = userInfo.indexOf(':');
    const user = colon < 0 ? userInfo : userInfo.slice(0, colon);
    try {
      username = user === '' ? undefined : decodeURIComponent(user);
      password = colon < 0 ? undefined : decodeURIComponent(userInfo.slice(colon + 1));
    } catch {
      throw bad('bad percent-encoding in the user info');
    }
  }
  const nodes: RedisNode[] = [];
  for (const part of hostList === '' ? [] : hostList.split(',')) {
    const hm = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(part);
    if (hm === null) throw bad(`bad host '${part}'`);
    const port = hm[3] === undefined ? 6379 : Number(hm[3]);
    if (!(port > 0 && port < 65536)) throw bad(`bad port in '${part}'`);
    nodes.push({ host: hm[1] ?? hm[2] ?? '', port });
  }
  if (nodes.length === 0) nodes.push({ host: '127.0.0.1', port: 6379 });
  let db: number | undefined;
  if (path !== undefined && path !== '/') {
    db = Number(path.slice(1));
    if (!Number.isSafeInteger(db) || db < 0) throw bad(`bad database number '${path.slice(1)}'`);
  }
  let cluster = false;
  let keyPrefix: string | undefined;
  for (const [key, value] of new URLSearchParams(query ?? '')) {
    if (key === 'cluster') {
      if (!['1', 'true', 'yes', '0', 'false', 'no'].includes(value))
        throw bad(`cluster=${value}: use 1 or 0`);
      cluster = ['1', 'true', 'yes'].includes(value);
    } else if (key === 'prefix') keyPrefix = value;
    else throw bad(`unknown parameter '${key}' (known: cluster, prefix)`);
  }
  if (nodes.length > 1 && !cluster) throw bad('several hosts need ?cluster=1');
  return { tls: scheme.toLowerCase() === 'rediss', username, password, nodes, db, cluster, keyPrefix };
}

/**
 * The URL with any password replaced by `***`: everything from the user name's ':' to the last
 * '@' (a password with an unencoded '@', '/', '?' or '#' is hidden whole too).
 */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/?#]*):.*@/is, '$1:***@');
}

type RedisClient = Redis | Cluster;
type ScriptFn = (...args: (string | Buffer | number)[]) => Promise<unknown>;
type ScriptRole =
  | 'commit'
  | 'resolveCommit'
  | 'writeChunk'
  | 'deleteCheckpoint'
  | 'acquireLease'
  | 'renewLease'
  | 'releaseLease'
  | 'writeRun';

interface Config {
  nodes: RedisNode[];
  cluster: boolean;
  username: string | undefined;
  password: string | undefined;
  tls: RedisTlsOptions | undefined;
  db: number | undefined;
  keyPrefix: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  chunkTtlMs: number;
  resolveTimeoutMs: number;
  connectionName: string;
}

const ABORTED_MARKER_TTL_MS = 24 * 3600_000;
/** Longest wait between two reconnection attempts to a server that went away. */
const RECONNECT_MAX_DELAY_MS = 2000;

/** Checkpoint storage in Redis or Redis Cluster; see the contract in `checkpoint-storage.ts` and the key layout above. */
export class RedisCheckpointStorage implements CheckpointStorage {
  readonly description: string;
  private readonly config: Config;
  private readonly scripts: Record<ScriptRole, StorageScript>;
  private client: RedisClient | undefined;
  private opened = false;
  private closing = false;
  private readonly registeredJobs = new Set<string>();
  /** Jobs whose damaged latest pointer was already warned about (once each). */
  private readonly warnedPointers = new Set<string>();

  writerSpec(): StorageSpec {
    return { kind: 'redis', options: { ...this.options } };
  }

  /** What `util.inspect` (and `console.log`) shows: the description, never the options (a password). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RedisCheckpointStorage { ${this.description} }`;
  }

  /** What `JSON.stringify` shows: the description, never the options (a password). */
  toJSON(): { description: string } {
    return { description: this.description };
  }

  constructor(private readonly options: RedisCheckpointStorageOptions) {
    const parsed = options.url === undefined ? undefined : parseRedisUrl(options.url);
    const useTls = options.tls === undefined ? (parsed?.tls ?? false) : options.tls !== false;
    if (parsed?.tls && options.tls === false)
      throw new StorageError(
        `Redis URL '${redactUrl(options.url ?? '')}' asks for TLS (rediss://) but tls is false`,
      );
    const nodes = options.nodes ?? parsed?.nodes;
    if (nodes === undefined || nodes.length === 0)
      throw new StorageError('Redis checkpoint storage: give a url or nodes');
    const cluster = options.cluster ?? parsed?.cluster ?? false;
    const db = options.db ?? parsed?.db;
    if (cluster && db !== undefined && db !== 0)
      throw new StorageError('Redis checkpoint storage: a Redis Cluster has only database 0');
    const keyPrefix = options.keyPrefix ?? parsed?.keyPrefix ?? 'tidemark';
    if (keyPrefix === '' || /[{}]/.test(keyPrefix))
      throw new StorageError(
        `Redis key prefix '${keyPrefix}' must be non-empty and contain no '{' or '}' (they form hash tags)`,
      );
    this.config = {
      nodes,
      cluster,
      username: options.username ?? parsed?.username,
      password: options.password ?? parsed?.password,
      tls: useTls ? (typeof options.tls === 'object' ? options.tls : {}) : undefined,
      db,
      keyPrefix,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      commandTimeoutMs: options.commandTimeoutMs ?? 30_000,
      chunkTtlMs: options.chunkTtlMs ?? 3600_000,
      resolveTimeoutMs: options.commitResolveTimeoutMs ?? 15_000,
      connectionName: options.connectionName ?? 'tidemark',
    };
    const c = this.config;
    const hosts = c.nodes.map((n) =>
      n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`,
    );
    this.description = `${c.tls ? 'rediss' : 'redis'}://${c.username === undefined ? '' : `${c.username}@`}${hosts.join(',')}${c.db ? `/${c.db}` : ''} (${c.cluster ? 'cluster, ' : ''}prefix ${c.keyPrefix})`;
    this.scripts = storageScripts();
  }

  async open(): Promise<void> {
    if (this.opened) return;
    this.closing = false;
    const client = this.createClient();
    const errors: Error[] = [];
    client.on('error', (e: Error) => {
      if (!this.opened) errors.push(e);
    });
    if (client instanceof ioredis().Cluster)
      client.on('node error', (e: Error) => {
        if (!this.opened) errors.push(e);
      });
    try {
      await client.connect();
      // NOTE: checks access without writing: a read of our keys (ACL key patterns) and a scripting
      // command (ACL command categories).
      await client.scard(`${this.config.keyPrefix}:jobs`);
      await client.script('EXISTS', ...Object.values(this.scripts).map((s) => scriptSha(s)));
    } catch (e) {
      client.disconnect();
      throw await this.openError(errors, e);
    }
    for (const s of Object.values(this.scripts))
      client.defineCommand(s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
    this.client = client;
    this.opened = true;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.opened = false;
    this.closing = true;
    if (client === undefined) return;
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
    else client.disconnect();
  }

  async newEpoch(jobId: string): Promise<number> {
    await this.registerJob('newEpoch', jobId);
    return this.run('newEpoch', jobId, async (client) => client.incr(this.keys(jobId).epoch));
  }

  async currentEpoch(jobId: string): Promise<number> {
    const value = await this.run('currentEpoch', jobId, (client) => client.get(this.keys(jobId).epoch));
    return value === null ? 0 : Number(value);
  }

  async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    checkChunkId(jobId, chunkId);
    checkChunkData(jobId, chunkId, data);
    await this.run('writeChunk', jobId, async (client) => {
      try {
        await this.script(
          client,
          'writeChunk',
          [this.keys(jobId).chunk(chunkId)],
          [encodeChunk(data), this.config.chunkTtlMs],
        );
      } catch (e) {
        throw this.scriptError(e, jobId, { chunkId });
      }
    });
  }

  async readChunk(jobId: string, chunkId: string): Promise<Uint8Array> {
    checkChunkId(jobId, chunkId);
    const stored = await this.run('readChunk', jobId, (client) =>
      client.getBuffer(this.keys(jobId).chunk(chunkId)),
    );
    if (stored === null) throw new CheckpointNotFoundError(jobId, `chunk '${chunkId}'`);
    return decodeChunk(jobId, chunkId, stored);
  }

  async commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options: CommitOptions = {},
  ): Promise<void> {
    checkJobId(jobId);
    checkCount(jobId, 'epoch', epoch);
    checkCount(jobId, 'checkpoint id', checkpointId);
    if (!(metadata instanceof Uint8Array))
      throw new StorageError(`job '${jobId}': metadata must be a Uint8Array`, { jobName: jobId });
    const retain = normalizeRetain(jobId, options.retain);
    const unique = uniqueChunkIds(jobId, chunkIds);
    const k = this.keys(jobId);
    const token = randomUUID();
    await this.registerJob('commit', jobId);
    await this.run('commit', jobId, async (client) => {
      try {
        await this.script(
          client,
          'commit',
          [
            k.epoch,
            k.latest,
            k.checkpoints,
            k.savepoints,
            k.refs,
            k.meta(checkpointId),
            k.chunks(checkpointId),
            k.info(checkpointId),
            k.aborted(token),
          ],
          [
            k.base,
            epoch,
            checkpointId,
            Buffer.from(metadata.buffer, metadata.byteOffset, metadata.byteLength),
            Date.now(),
            options.savepoint === true ? '1' : '0',
            retain,
            token,
            CHUNK_HEADER_BYTES,
            ...unique,
          ],
        );
      } catch (e) {
        if (isReplyError(e)) throw this.scriptError(e, jobId, { epoch, checkpointId });
        if (isNotSent(e))
          throw new StorageError(
            `${this.description}: commit of checkpoint ${checkpointId} of job '${jobId}' failed: the connection to Redis is lost; nothing was sent`,
            { jobName: jobId, checkpointId, cause: sanitize(e, this.config.password) },
          );
        // NOTE: no reply (timeout, connection lost): the commit may or may not have run. Ask Redis,
        // and make a commit still in flight fail; never guess.
        await this.resolveCommit(client, jobId, epoch, checkpointId, token, e);
      }
    });
  }

  async latest(jobId: string): Promise<number | undefined> {
    const value = await this.run('latest', jobId, (client) => client.get(this.keys(jobId).latest));
    if (value === null) return undefined;
    if (/^\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
    // NOTE: a damaged pointer (not an id): the newest stored checkpoint or savepoint stands for it,
    // as the commit script reads it (and the next commit sets it again).
    const newest = (await this.list(jobId)).at(-1)?.checkpointId;
    if (!this.warnedPointers.has(jobId)) {
      this.warnedPointers.add(jobId);
      process.emitWarning(
        `job '${jobId}': the latest pointer ${this.keys(jobId).latest} in ${this.description} is damaged (not a checkpoint id); using the newest stored checkpoint${newest === undefined ? ' (there is none)' : `, ${newest}`}`,
        { code: 'TIDEMARK_STORAGE' },
      );
    }
    return newest;
  }

  async list(jobId: string): Promise<CheckpointInfo[]> {
    const k = this.keys(jobId);
    return this.run('list', jobId, async (client) => {
      const [checkpoints, savepoints] = checkPipeline(
        'list',
        await client.pipeline().zrange(k.checkpoints, 0, -1).zrange(k.savepoints, 0, -1).exec(),
      ) as [string[], string[]];
      const ids = [...checkpoints, ...savepoints].map(Number).sort((a, b) => a - b);
      if (ids.length === 0) return [];
      const pipeline = client.pipeline();
      for (const id of ids) pipeline.hgetall(k.info(id));
      const infos = checkPipeline('list', await pipeline.exec()) as Record<string, string>[];
      const out: CheckpointInfo[] = [];
      ids.forEach((checkpointId, i) => {
        const info = infos[i];
        // A checkpoint removed between the two round trips (a concurrent retention) is left out.
        if (info === undefined || info.timestamp === undefined) return;
        out.push({
          checkpointId,
          timestamp: Number(info.timestamp),
          sizeBytes: Number(info.sizeBytes),
          chunkCount: Number(info.chunkCount),
          savepoint: info.savepoint === '1',
        });
      });
      return out;
    });
  }

  async readMetadata(jobId: string, checkpointId: number): Promise<Uint8Array> {
    checkJobId(jobId);
    checkCount(jobId, 'checkpoint id', checkpointId);
    const metadata = await this.run('readMetadata', jobId, (client) =>
      client.getBuffer(this.keys(jobId).meta(checkpointId)),
    );
    if (metadata === null)
      throw new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
    return asUint8Array(metadata);
  }

  async delete(jobId: string, checkpointId: number): Promise<void> {
    checkJobId(jobId);
    checkCount(jobId, 'checkpoint id', checkpointId);
    const k = this.keys(jobId);
    const deleted = await this.run('delete', jobId, async (client) => {
      try {
        return await this.script(
          client,
          'deleteCheckpoint',
          [k.latest, k.checkpoints, k.savepoints, k.refs],
          [k.base, checkpointId],
        );
      } catch (e) {
        throw this.scriptError(e, jobId, { checkpointId });
      }
    });
    if (deleted !== 1) throw new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
  }

  async listJobs(): Promise<string[]> {
    return this.run('listJobs', undefined, async (client) => {
      const encoded = await client.smembers(`${this.config.keyPrefix}:jobs`);
      // NOTE: one command per job, not a pipeline: in a cluster the jobs live in different slots.
      const counts = await Promise.all(
        encoded.map(async (job) => {
          const k = this.keysOfEncoded(job);
          return (await client.zcard(k.checkpoints)) + (await client.zcard(k.savepoints));
        }),
      );
      return encoded
        .filter((_, i) => (counts[i] ?? 0) > 0)
        .map(decodeJobId)
        .sort();
    });
  }

  leases(): LeaseStore {
    return {
      description: this.description,
      acquire: (jobId, record) => this.acquireLease(jobId, record),
      renew: (jobId, token, leaseMs) => this.leaseScript('renewLease', jobId, [token, leaseMs]),
      release: async (jobId, token) => {
        await this.leaseScript('releaseLease', jobId, [token]);
      },
      holder: async (jobId) =>
        parseLeaderRecord(await this.run('holder', jobId, (client) => client.get(this.keys(jobId).leader))),
      readRun: async (jobId) =>
        parseRunRecord(await this.run('readRun', jobId, (client) => client.get(this.keys(jobId).run))),
      writeRun: (jobId, token, run) => this.leaseScript('writeRun', jobId, [token, JSON.stringify(run)]),
    };
  }

  private async acquireLease(jobId: string, record: LeaderRecord): Promise<LeaseAttempt> {
    const k = this.keys(jobId);
    const reply = (await this.run('acquireLease', jobId, (client) =>
      this.script(
        client,
        'acquireLease',
        [k.leader, k.leaderGeneration],
        [JSON.stringify(record), record.leaseMs],
      ),
    )) as [number, number | string | null, number?];
    if (Number(reply[0]) === 1) return { acquired: true, generation: Number(reply[1]) };
    const remaining = Number(reply[2]);
    return {
      acquired: false,
      holder: parseLeaderRecord(reply[1] === null ? undefined : String(reply[1])),
      remainingMs: remaining >= 0 ? remaining : undefined,
    };
  }

  /** Runs a compare-the-token script on the lease (and run) keys; true if the token held the lease. */
  private async leaseScript(
    role: 'renewLease' | 'releaseLease' | 'writeRun',
    jobId: string,
    args: (string | number)[],
  ): Promise<boolean> {
    const k = this.keys(jobId);
    const keys = role === 'writeRun' ? [k.leader, k.run] : [k.leader];
    const reply = await this.run(role, jobId, (client) => this.script(client, role, keys, args));
    return Number(reply) === 1;
  }

  /**
   * Adds the job to `<prefix>:jobs` (once per instance and job). NOTE: the registry is outside the
   * job's hash tag (another cluster slot), so it cannot be part of the commit script: it is added
   * before any commit, and listJobs skips jobs without checkpoints.
   */
  private async registerJob(op: string, jobId: string): Promise<void> {
    if (this.registeredJobs.has(jobId)) return;
    const encoded = this.keys(jobId).encodedJob;
    try {
      await this.run(op, jobId, (client) => client.sadd(`${this.config.keyPrefix}:jobs`, encoded));
    } catch (e) {
      throw new StorageError(
        `${(e as Error).message} (while registering the job, before anything else was sent)`,
        { jobName: jobId, cause: (e as Error).cause },
      );
    }
    this.registeredJobs.add(jobId);
  }

  // ---- keys

  private keys(jobId: string) {
    checkJobId(jobId);
    return this.keysOfEncoded(encodeJobId(jobId));
  }

  private keysOfEncoded(encodedJob: string) {
    const base = `${this.config.keyPrefix}:{${encodedJob}}:`;
    return {
      encodedJob,
      base,
      epoch: `${base}epoch`,
      latest: `${base}latest`,
      checkpoints: `${base}checkpoints`,
      savepoints: `${base}savepoints`,
      refs: `${base}refs`,
      meta: (id: number) => `${base}cp:${id}:meta`,
      chunks: (id: number) => `${base}cp:${id}:chunks`,
      info: (id: number) => `${base}cp:${id}:info`,
      chunk: (chunkId: string) => `${base}chunk:${chunkId}`,
      aborted: (token: string) => `${base}aborted:${token}`,
      leader: `${base}leader`,
      leaderGeneration: `${base}leader-generation`,
      run: `${base}run`,
    };
  }

  // ---- connection

  private createClient(): RedisClient {
    const c = this.config;
    const tls = c.tls === undefined ? undefined : { ...c.tls };
    // NOTE: fail fast and never resend: no retry while opening (one clear error), then reconnect in
    // the background (forever, every RECONNECT_MAX_DELAY_MS at most, so a server that comes back is
    // used again) while commands fail at once (maxRetriesPerRequest 0 rejects what was in flight
    // when a connection drops); a command in flight is never sent twice (a resent commit could
    // report STALE after it succeeded), and a lost reply to a commit is resolved by resolveCommit.
    // A command is only sent on a ready connection (`waitReady` waits for one, boundedly): with no
    // offline queue, one issued as the connection drops fails at once ("nothing was sent") rather
    // than waiting in a queue to be sent later. How long an outage is ridden out is not decided
    // here: a checkpoint that fails counts against `tolerableFailures`, and a job that fails
    // reads its latest checkpoint again under the restart strategy.
    const retryStrategy = (times: number) =>
      this.opened && !this.closing ? Math.min(50 * 2 ** Math.min(times, 6), RECONNECT_MAX_DELAY_MS) : null;
    const common: RedisOptions = {
      lazyConnect: true,
      connectTimeout: c.connectTimeoutMs,
      commandTimeout: c.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // NOTE: a cluster's node connections connect lazily, on their first command: they need it.
      enableOfflineQueue: c.cluster,
      connectionName: c.connectionName,
      ...(c.username === undefined ? {} : { username: c.username }),
      ...(c.password === undefined ? {} : { password: c.password }),
      ...(tls === undefined ? {} : { tls }),
    };
    if (c.cluster) {
      const clusterOptions: ClusterOptions = {
        lazyConnect: true,
        redisOptions: common,
        clusterRetryStrategy: retryStrategy,
        enableOfflineQueue: true,
        slotsRefreshTimeout: c.connectTimeoutMs,
        // With TLS, connect by the seed names (certificates name hosts, not the IPs nodes announce).
        ...(tls === undefined
          ? {}
          : { dnsLookup: (address: string, cb: (e: null, a: string) => void) => cb(null, address) }),
      };
      return new (ioredis().Cluster)(c.nodes, clusterOptions);
    }
    const node = c.nodes[0] ?? { host: '127.0.0.1', port: 6379 };
    return new (ioredis().Redis)({
      ...common,
      host: node.host,
      port: node.port,
      db: c.db ?? 0,
      retryStrategy,
    });
  }

  /** One clear error for a failed `open()` (the most telling of what ioredis reported). */
  private async openError(errors: Error[], final: unknown): Promise<StorageError> {
    const all: Error[] = [];
    for (const e of [...errors, final as Error]) {
      // A cluster's "Failed to refresh slots cache." carries the last node's error.
      const nodeError = (e as { lastNodeError?: unknown } | undefined)?.lastNodeError;
      if (nodeError instanceof Error) all.push(nodeError);
      all.push(e);
    }
    const where = this.description;
    const notCluster = all.find((e) => /cluster support disabled/i.test(e.message));
    if (notCluster !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: the server is not a Redis Cluster (drop ?cluster=1 / the cluster option)`,
        {
          cause: sanitize(notCluster, this.config.password),
        },
      );
    const find = (test: (e: Error & { code?: string }) => boolean) =>
      all.find((e) => e instanceof Error && test(e as Error & { code?: string }));
    const auth = find((e) => /WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(e.message));
    if (auth !== undefined) {
      const detail = /NOAUTH/.test(auth.message)
        ? 'the server requires a password and none was given'
        : `authentication failed for user '${this.config.username ?? 'default'}' (wrong user name or password, or the user is disabled)`;
      return new StorageError(`cannot open Redis checkpoint storage ${where}: ${detail}`, {
        cause: sanitize(auth, this.config.password),
      });
    }
    const noperm = find((e) => /NOPERM/.test(e.message));
    if (noperm !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: user '${this.config.username ?? 'default'}' lacks a permission it needs (keys '${this.config.keyPrefix}:*' and the scripting commands): ${noperm.message}`,
        { cause: sanitize(noperm, this.config.password) },
      );
    const cert = find(
      (e) =>
        /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(e.code ?? '') || /certificate/i.test(e.message),
    );
    if (cert !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: the server's TLS certificate was rejected (${cert.message}); give the CA with the tls.ca option`,
        { cause: sanitize(cert, this.config.password) },
      );
    const tlsProtocol = find(
      (e) => /^ERR_SSL|EPROTO/.test(e.code ?? '') || /SSL routines|wrong version number/i.test(e.message),
    );
    if (tlsProtocol !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: TLS handshake failed (${tlsProtocol.message}); is the server TLS-enabled? Use redis:// for a plain-text server`,
        { cause: sanitize(tlsProtocol, this.config.password) },
      );
    const refused = find((e) => e.code === 'ECONNREFUSED');
    if (refused !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: connection refused (is redis-server running there?)`,
        {
          cause: sanitize(refused, this.config.password),
        },
      );
    const notFound = find((e) => e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN');
    if (notFound !== undefined)
      return new StorageError(`cannot open Redis checkpoint storage ${where}: host not found`, {
        cause: sanitize(notFound, this.config.password),
      });
    const timeout = find((e) => e.code === 'ETIMEDOUT' || /ETIMEDOUT|timed? ?out/i.test(e.message));
    if (timeout !== undefined) {
      const tcpWorks = this.config.tls !== undefined && (await tcpReachable(this.config.nodes[0], 1000));
      return new StorageError(
        tcpWorks
          ? `cannot open Redis checkpoint storage ${where}: the TLS handshake did not complete within ${this.config.connectTimeoutMs} ms although the port accepts connections; the server probably does not speak TLS (use redis://)`
          : `cannot open Redis checkpoint storage ${where}: no connection within ${this.config.connectTimeoutMs} ms`,
        { cause: sanitize(timeout, this.config.password) },
      );
    }
    const reset = find((e) => e.code === 'ECONNRESET' || e.code === 'EPIPE');
    if (reset !== undefined)
      return new StorageError(
        `cannot open Redis checkpoint storage ${where}: the server closed the connection during the handshake${this.config.tls === undefined ? '; a TLS-only server? (use rediss://)' : ''}`,
        { cause: sanitize(reset, this.config.password) },
      );
    if (this.config.cluster) {
      const reachable = await Promise.all(this.config.nodes.map((n) => tcpReachable(n, 1000)));
      if (!reachable.includes(true))
        return new StorageError(
          `cannot open Redis checkpoint storage ${where}: none of the seed nodes accepts connections (is the cluster running there?)`,
          { cause: sanitize(final, this.config.password) },
        );
    }
    const first =
      all.find((e) => e instanceof Error && e.message !== 'Connection is closed.') ?? (final as Error);
    return new StorageError(
      `cannot open Redis checkpoint storage ${where}: ${redact(String(first?.message ?? first), this.config.password)}`,
      {
        cause: sanitize(first, this.config.password),
      },
    );
  }

  // ---- commands

  private async run<T>(
    op: string,
    jobId: string | undefined,
    fn: (client: RedisClient) => Promise<T>,
  ): Promise<T> {
    if (jobId !== undefined) checkJobId(jobId);
    const client = this.client;
    if (client === undefined || !this.opened)
      throw new StorageError(`${this.description}: storage is not open (call open() first)`);
    try {
      await this.waitReady(client, op, jobId);
      return await fn(client);
    } catch (e) {
      if (e instanceof StorageError) throw e;
      const job = jobId === undefined ? '' : ` of job '${jobId}'`;
      throw new StorageError(
        `${this.description}: ${op}${job} failed: ${redact(messageOf(e), this.config.password)}`,
        {
          cause: sanitize(e, this.config.password),
          ...(jobId === undefined ? {} : { jobName: jobId }),
        },
      );
    }
  }

  /**
   * Waits (boundedly) for a connection being re-established. NOTE: a command is only sent on a
   * ready connection, so a failure while not connected is a definite "not sent", never ambiguous.
   */
  private waitReady(client: RedisClient, op: string, jobId: string | undefined): Promise<void> {
    if (client.status === 'ready') return Promise.resolve();
    // A connect attempt, the longest wait between two, and a margin.
    const limitMs = this.config.connectTimeoutMs + RECONNECT_MAX_DELAY_MS + 1000;
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('end', onEnd);
      };
      const fail = () => {
        cleanup();
        const job = jobId === undefined ? '' : ` of job '${jobId}'`;
        reject(
          new StorageError(
            `${this.description}: ${op}${job} failed: not connected to Redis (status ${client.status}) for ${limitMs} ms; nothing was sent`,
            jobId === undefined ? {} : { jobName: jobId },
          ),
        );
      };
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onEnd = () => fail();
      const timer = setTimeout(fail, limitMs);
      client.once('ready', onReady);
      client.once('end', onEnd);
    });
  }

  private script(client: RedisClient, role: ScriptRole, keys: string[], args: (string | Buffer | number)[]) {
    const s = this.scripts[role];
    if (keys.length !== s.numberOfKeys)
      throw new TidemarkError(
        'INTERNAL_ERROR',
        `${s.name}: ${keys.length} keys given, ${s.numberOfKeys} declared`,
      );
    const fn = (client as unknown as Record<string, ScriptFn>)[s.name];
    if (fn === undefined) throw new TidemarkError('INTERNAL_ERROR', `${s.name} is not defined on the client`);
    return fn.call(client, ...keys, ...args);
  }

  /**
   * The one place that maps the error replies of the scripts (see their headers) to errors. Other
   * errors pass through (and `run` names the operation).
   */
  private scriptError(
    e: unknown,
    jobId: string,
    at: { epoch?: number; checkpointId?: number; chunkId?: string },
  ): unknown {
    if (!isReplyError(e)) return e;
    const [code, arg = ''] = splitReply((e as Error).message);
    const id = at.checkpointId ?? -1;
    switch (code) {
      case 'FENCED':
        return new FencedError(jobId, at.epoch ?? -1, Number(arg));
      case 'BADEPOCH':
        return unknownEpochError(jobId, at.epoch ?? -1, Number(arg));
      case 'STALE':
        return new StaleCheckpointError(jobId, id, Number(arg));
      case 'MISSINGCHUNK':
        return missingChunkError(jobId, arg, id);
      case 'IMMUTABLE':
        return immutableChunkError(jobId, at.chunkId ?? '?');
      case 'ABORTED':
        return new StorageError(
          `job '${jobId}': commit of checkpoint ${id} refused: it was already declared failed`,
          {
            jobName: jobId,
            checkpointId: id,
          },
        );
      default:
        return e;
    }
  }

  /** Finds out whether a commit whose reply was lost happened; if not, makes sure it never will. */
  private async resolveCommit(
    client: RedisClient,
    jobId: string,
    epoch: number,
    checkpointId: number,
    token: string,
    cause: unknown,
  ): Promise<void> {
    const k = this.keys(jobId);
    const deadline = Date.now() + this.config.resolveTimeoutMs;
    const causeText = redact(messageOf(cause), this.config.password);
    for (let attempt = 0; ; attempt++) {
      let reply: unknown;
      try {
        reply = await this.script(
          client,
          'resolveCommit',
          [k.info(checkpointId), k.aborted(token), k.epoch],
          [token, ABORTED_MARKER_TTL_MS],
        );
      } catch (e) {
        if (isReplyError(e) || Date.now() >= deadline)
          throw new CommitOutcomeUnknownError(
            jobId,
            checkpointId,
            `the reply was lost (${causeText}) and checking afterwards failed for ${this.config.resolveTimeoutMs} ms (${redact(messageOf(e), this.config.password)}); do not assume either outcome: read latest() once Redis is reachable`,
            sanitize(cause, this.config.password),
          );
        await sleep(Math.min(50 * 2 ** attempt, 1000));
        continue;
      }
      const [committed, current] = (reply as [number, number]).map(Number) as [number, number];
      if (committed === 1) return;
      if (current > epoch) throw new FencedError(jobId, epoch, current);
      throw new StorageError(
        `job '${jobId}': commit of checkpoint ${checkpointId} failed: ${causeText}; checked afterwards: it did not happen (and now cannot)`,
        { jobName: jobId, checkpointId, cause: sanitize(cause, this.config.password) },
      );
    }
  }
}

/** The job id as it appears inside the hash tag: `%`, `{` and `}` percent-encoded. */
function encodeJobId(jobId: string): string {
  return jobId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decodeJobId(encoded: string): string {
  return encoded.replace(/%(25|7B|7D)/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/**
 * The results of a pipeline or MULTI (pairs of error and value): the values, or the first error
 * (which `run` turns into a {@link StorageError} naming the operation).
 */
export function checkPipeline(op: string, results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new TidemarkError('STORAGE_ERROR', `${op}: the pipeline was discarded`);
  return results.map(([error, value]) => {
    if (error !== null) throw error;
    return value;
  });
}

/** ioredis refused to send a command (no writable connection, and no offline queue). */
function isNotSent(e: unknown): boolean {
  return e instanceof Error && /^Stream isn't writeable/.test(e.message);
}

function isReplyError(e: unknown): boolean {
  return e instanceof Error && e.name === 'ReplyError';
}

function splitReply(message: string): [string, string | undefined] {
  // NOTE: Redis prefixes "ERR " to an error reply without an argument (e.g. "ERR IMMUTABLE").
  const m = /^(?:ERR )?(FENCED|BADEPOCH|ABORTED|STALE|MISSINGCHUNK|IMMUTABLE)(?: (.+))?$/s.exec(message);
  return m === null ? ['', undefined] : [m[1] ?? '', m[2]];
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function redact(text: string, password: string | undefined): string {
  return password !== undefined && password.length >= 3 ? text.split(password).join('***') : text;
}

/**
 * A copy of an ioredis error with its name, message and code only: ioredis attaches the command
 * with its arguments (an AUTH password, chunk bytes) to errors, which must not travel on.
 */
function sanitize(e: unknown, password: string | undefined): Error {
  const out = new Error(redact(messageOf(e), password));
  if (e instanceof Error) out.name = e.name;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') (out as Error & { code?: string }).code = code;
  return out;
}

function scriptSha(s: StorageScript): string {
  return createHash('sha1').update(s.lua).digest('hex');
}

function tcpReachable(node: RedisNode | undefined, timeoutMs: number): Promise<boolean> {
  if (node === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = netConnect({ host: node.host, port: node.port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
