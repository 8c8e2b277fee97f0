/**
 * Redis connectors: how to reach Redis, and a replayable source reading Redis Streams (XREAD),
 * whose position per stream is the last entry id read (so a restored job resumes exactly after
 * it). The exactly-once sink is in `redis-sink.ts`.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { InvalidArgumentError } from '../../state/errors.js';
import { StorageError } from '../../state/storage/checkpoint-storage.js';
import { ioredis } from '../../state/storage/ioredis.js';
import { parseRedisUrl } from '../../state/storage/redis.js';
import {
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
  type SourceSplit,
} from '../sources/source.js';

/** How to reach Redis: a `redis://` / `rediss://` URL (as for checkpoint storage) and TLS options. */
export interface RedisConnection {
  url: string;
  tls?: {
    ca?: string | Buffer;
    cert?: string | Buffer;
    key?: string | Buffer;
    rejectUnauthorized?: boolean;
    servername?: string;
  };
}

/** A standalone or cluster client. */
export type Client = Redis | Cluster;

/** Opens a client (cluster when the URL says `?cluster=1`). */
export function connectRedis(c: RedisConnection, name: string): Client {
  const p = parseRedisUrl(c.url);
  const base: RedisOptions = {
    connectionName: name,
    maxRetriesPerRequest: 3,
    enableAutoPipelining: false,
    ...(p.username === undefined ? {} : { username: p.username }),
    ...(p.password === undefined ? {} : { password: p.password }),
    ...(p.db === undefined ? {} : { db: p.db }),
    ...(p.tls || c.tls !== undefined ? { tls: { ...(c.tls ?? {}) } } : {}),
  };
  if (p.cluster) return new (ioredis().Cluster)(p.nodes, { redisOptions: base });
  const n = p.nodes[0]!;
  return new (ioredis().Redis)({ ...base, host: n.host, port: n.port });
}

// ---- source ----

/** One Redis stream and the last entry id read from it. */
export interface RedisStreamSplit extends SourceSplit {
  readonly key: string;
  /** Entries after this id are read next (`0` = from the beginning). */
  lastId: string;
  /** Bounded reads stop after this id (the stream's last entry when the job started). */
  endId?: string;
}

/** An entry of a Redis stream. */
export interface RedisStreamEntry {
  stream: string;
  id: string;
  fields: Record<string, string>;
}

/** Options of {@link RedisStreamSource}. */
export interface RedisStreamSourceOptions<T> {
  connection: RedisConnection;
  /** The streams to read (one split each). */
  streams: readonly string[];
  /** Where to start without a checkpoint: `0` (the beginning, default) or `$` (only new entries). */
  startId?: '0' | '$';
  /** Stop at the entries present when the job started (a bounded source). */
  bounded?: boolean;
  /** Entries per XREAD (default 512). */
  batchSize?: number;
  /** How long an XREAD waits for new entries, ms (default 1000). */
  blockMs?: number;
  /** Turns an entry into a record (default: the entry itself). */
  parse?: (entry: RedisStreamEntry) => T;
}

/** Milliseconds part of a stream entry id: the entry's natural event time. */
export function streamIdTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/** Reads Redis Streams; records carry the entry id's time as their timestamp. */
export class RedisStreamSource<T = RedisStreamEntry> implements Source<T, RedisStreamSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  constructor(readonly options: RedisStreamSourceOptions<T>) {
    if (options.streams.length === 0)
      throw new InvalidArgumentError('RedisStreamSource needs at least one stream');
    this.boundedness = options.bounded === true ? 'bounded' : 'unbounded';
  }
  createSplits(): RedisStreamSplit[] {
    return this.options.streams.map((key) => ({
      splitId: `redis-stream:${key}`,
      key,
      lastId: this.options.startId ?? '0',
    }));
  }
  createReader(ctx: SourceReaderContext): SourceReader<T, RedisStreamSplit> {
    return new RedisStreamReader(this.options, ctx);
  }
}

class RedisStreamReader<T> implements SourceReader<T, RedisStreamSplit> {
  private readonly splits: RedisStreamSplit[] = [];
  private client: Client | undefined;
  private buffer: RedisStreamEntry[] = [];
  private pending = false;
  private failure: Error | undefined;
  private ready = false;
  private closed = false;

  constructor(
    private readonly options: RedisStreamSourceOptions<T>,
    private readonly ctx: SourceReaderContext,
  ) {}

  addSplits(splits: readonly RedisStreamSplit[]): void {
    for (const s of splits) this.splits.push({ ...s });
  }

  /** Connects, resolves `$` start ids and, for bounded reads, each stream's end. */
  private prepare(): void {
    this.client = connectRedis(
      this.options.connection,
      `tidemark-source-${this.ctx.info.operatorId}-${this.ctx.info.subtaskIndex}`,
    );
    void (async () => {
      for (const s of this.splits) {
        const needEnd = this.options.bounded === true && s.endId === undefined;
        if (s.lastId === '$' || needEnd) {
          const last = (await this.client!.xrevrange(s.key, '+', '-', 'COUNT', 1)) as [string, string[]][];
          const lastId = last[0]?.[0] ?? '0-0';
          if (s.lastId === '$') s.lastId = lastId;
          if (needEnd) s.endId = lastId;
        }
      }
    })().then(
      () => {
        this.ready = true;
        this.ctx.wakeUp();
      },
      (e: unknown) => {
        this.failure = e as Error;
        this.ctx.wakeUp();
      },
    );
  }

  private fetch(): void {
    if (this.pending || this.closed) return;
    const open = this.splits.filter((s) => s.endId === undefined || compareIds(s.lastId, s.endId) < 0);
    if (open.length === 0) return;
    this.pending = true;
    const args: (string | number)[] = ['COUNT', this.options.batchSize ?? 512];
    // Bounded reads never block: everything they need is already in the streams.
    if (this.options.bounded !== true) args.push('BLOCK', this.options.blockMs ?? 1000);
    args.push('STREAMS', ...open.map((s) => s.key), ...open.map((s) => s.lastId));
    (this.client!.xread as (...a: (string | number)[]) => Promise<[string, [string, string[]][]][] | null>)(
      ...args,
    ).then(
      (reply) => {
        this.pending = false;
        for (const [stream, entries] of reply ?? []) {
          const split = open.find((s) => s.key === stream)!;
          for (const [id, flat] of entries) {
            if (split.endId !== undefined && compareIds(id, split.endId) > 0) break;
            const fields: Record<string, string> = {};
            for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
            this.buffer.push({ stream, id, fields });
          }
        }
        this.ctx.wakeUp();
      },
      (e: unknown) => {
        this.pending = false;
        this.failure = e as Error;
        this.ctx.wakeUp();
      },
    );
  }

  pollNext(output: ReaderOutput<T>): InputStatus {
    if (this.failure !== undefined)
      throw new StorageError(`reading Redis streams failed: ${this.failure.message}`, {
        cause: this.failure,
      });
    if (this.client === undefined) this.prepare();
    if (!this.ready) return NOTHING_AVAILABLE;
    const e = this.buffer.shift();
    if (e !== undefined) {
      const split = this.splits.find((s) => s.key === e.stream)!;
      split.lastId = e.id;
      const value = this.options.parse === undefined ? (e as unknown as T) : this.options.parse(e);
      output.forSplit(split.splitId).collect(value, streamIdTime(e.id));
      if (this.buffer.length === 0) this.fetch();
      return MORE_AVAILABLE;
    }
    const done = this.splits.every((s) => s.endId !== undefined && compareIds(s.lastId, s.endId) >= 0);
    if (done && this.options.bounded === true) {
      for (const s of this.splits) output.releaseSplit(s.splitId);
      return END_OF_INPUT;
    }
    this.fetch();
    return NOTHING_AVAILABLE;
  }

  snapshotState(): RedisStreamSplit[] {
    return this.splits.map((s) => ({ ...s }));
  }

  close(): void {
    this.closed = true;
    this.client?.disconnect();
  }
}
