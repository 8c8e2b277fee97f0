/**
 * The exactly-once Redis sink: a two-phase-commit sink writing stream entries (XADD) or hash
 * fields (HSET). A transaction's writes are kept (in the checkpoint) until the checkpoint that
 * covers them completes; then they are committed in batches.
 *
 * - **Any size.** A transaction is cut into batches of at most `maxBatchWrites` writes (and a
 *   bounded number of arguments), each one script call; a transaction of millions of records is
 *   many calls, never one giant one.
 * - **Each batch exactly once.** A batch script checks the batch's own commit marker, checks that
 *   every key it writes has the right type (or none), writes, and sets its marker last, all in one
 *   atomic script: a batch that fails writes nothing and sets no marker, a batch that ran is never
 *   run again. A commit that fails half-way (a key of the wrong type, a lost connection, a crash)
 *   is retried after the restore: the batches that ran are skipped, the rest run.
 * - **Order.** Writes to one key keep their order: a key's writes are in one hash slot, whose
 *   batches run one after the other, each only after the one before succeeded.
 * - **Redis Cluster.** Writes are grouped by hash slot; a batch only touches keys of one slot and
 *   declares every key it touches, its marker included (the marker carries a hash tag of that
 *   slot). Slots are committed concurrently.
 *
 * NOTE: the batch plan (how the writes are cut) is fixed when the transaction begins and stored
 * with it, so a restored transaction is cut the same way and meets the same markers, whatever the
 * options of the job that restores it.
 */
import { createRequire } from 'node:module';
import { InvalidArgumentError } from '../../state/errors.js';
import { StorageError } from '../../state/storage/checkpoint-storage.js';
import { parseRedisUrl } from '../../state/storage/redis.js';
import type { SinkFactory } from '../data-stream.js';
import { type TransactionContext, TwoPhaseCommitSink } from '../sinks/two-phase-commit.js';
import { type Client, connectRedis, type RedisConnection } from './redis.js';

/** One write of a Redis sink transaction. */
type RedisWrite = ['xadd', string, string[]] | ['hset', string, string, string];

interface RedisTransaction {
  id: string;
  writes: RedisWrite[];
  /** Writes per batch, fixed when the transaction began (absent in transactions of older versions). */
  batchWrites?: number;
}

/** Options of {@link RedisSink}. */
export interface RedisSinkOptions {
  connection: RedisConnection;
  /** Prefix of commit-marker keys (default `tidemark:sink`); no `{` or `}`. */
  markerPrefix?: string;
  /** How long commit markers are kept, ms (default 7 days): a restore older than that could repeat a commit. */
  markerTtlMs?: number;
  /** Writes per script call when a transaction is committed (default 4096). */
  maxBatchWrites?: number;
}

/** Most arguments (keys and values) of one batch's script call. */
const MAX_BATCH_ARGS = 65_536;
/** Most arguments of one write (Redis's Lua `unpack` allows about 8000). */
const MAX_WRITE_ARGS = 4_000;
/** Hash slots whose batches are committed at once. */
const SLOTS_IN_FLIGHT = 8;

/** Commits one batch (see the module comment); returns 1 if it wrote, 0 if it ran before. */
const BATCH_SCRIPT = `
-- KEYS[1]: the batch's commit marker; KEYS[2..]: the keys the batch writes (one hash slot)
-- ARGV[1]: marker expiry in ms; ARGV[2]: 'xadd' or 'hset'
-- ARGV[3..]: per write: the index of its key in KEYS, the number n of its arguments, the n arguments
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local want = 'hash'
if ARGV[2] == 'xadd' then want = 'stream' end
for k = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[k] .. ' holds a ' .. t .. ', not a ' .. want)
  end
end
local i = 3
local last = #ARGV
while i <= last do
  local key = KEYS[tonumber(ARGV[i])]
  local n = tonumber(ARGV[i + 1])
  if want == 'stream' then
    redis.call('XADD', key, '*', unpack(ARGV, i + 2, i + 1 + n))
  else
    redis.call('HSET', key, unpack(ARGV, i + 2, i + 1 + n))
  end
  i = i + 2 + n
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
`;

/** A batch of writes to keys of one hash slot. */
interface Batch {
  /** Position in the transaction's plan (names its marker). */
  index: number;
  slot: number;
  writes: RedisWrite[];
}

type SlotOf = (key: string) => number;
let slotOfKey: SlotOf | undefined;
/** Redis Cluster's hash slot of a key (hash tags included), from the library ioredis uses. */
function keySlot(key: string): number {
  slotOfKey ??= createRequire(import.meta.url)('cluster-key-slot') as SlotOf;
  return slotOfKey(key);
}

let slotTags: string[] | undefined;
/** A short string whose hash slot is `slot`: as `{tag}` it puts a key in that slot. */
function slotTag(slot: number): string {
  if (slotTags === undefined) {
    const tags = new Array<string>(16384);
    let found = 0;
    for (let n = 0; found < 16384; n++) {
      const t = n.toString(36);
      const s = keySlot(t);
      if (tags[s] === undefined) {
        tags[s] = t;
        found++;
      }
    }
    slotTags = tags;
  }
  return slotTags[slot]!;
}

function argsOf(w: RedisWrite): number {
  return w[0] === 'xadd' ? 2 + w[2].length : 4;
}

/**
 * Cuts a transaction's writes into batches: per hash slot (cluster) or all together, in order,
 * at most `maxWrites` writes and {@link MAX_BATCH_ARGS} arguments each.
 */
function planBatches(writes: readonly RedisWrite[], cluster: boolean, maxWrites: number): Batch[] {
  const bySlot = new Map<number, RedisWrite[]>();
  const slots = new Map<string, number>();
  for (const w of writes) {
    let slot = 0;
    if (cluster) {
      const s = slots.get(w[1]);
      if (s === undefined) slots.set(w[1], (slot = keySlot(w[1])));
      else slot = s;
    }
    const list = bySlot.get(slot);
    if (list === undefined) bySlot.set(slot, [w]);
    else list.push(w);
  }
  const batches: Batch[] = [];
  for (const [slot, list] of bySlot) {
    let current: RedisWrite[] = [];
    let args = 0;
    for (const w of list) {
      const a = argsOf(w) + 1;
      if (current.length > 0 && (current.length >= maxWrites || args + a > MAX_BATCH_ARGS)) {
        batches.push({ index: batches.length, slot, writes: current });
        current = [];
        args = 0;
      }
      current.push(w);
      args += a;
    }
    if (current.length > 0) batches.push({ index: batches.length, slot, writes: current });
  }
  return batches;
}

/** The arguments of a batch's script call: `[numkeys, ...KEYS, ...ARGV]`. */
function batchCall(marker: string, ttlMs: number, batch: Batch): (string | number)[] {
  const keys: string[] = [marker];
  const index = new Map<string, number>();
  const argv: (string | number)[] = [ttlMs, batch.writes[0]![0]];
  for (const w of batch.writes) {
    let k = index.get(w[1]);
    if (k === undefined) {
      keys.push(w[1]);
      index.set(w[1], (k = keys.length));
    }
    if (w[0] === 'xadd') argv.push(k, w[2].length, ...w[2]);
    else argv.push(k, 2, w[2], w[3]);
  }
  return [keys.length, ...keys, ...argv];
}

type BatchClient = Client & {
  tidemarkSinkBatch(args: (string | number)[]): Promise<number>;
};

/** The Redis sink operator (see the module comment). */
export class RedisSinkOperator<T> extends TwoPhaseCommitSink<T, RedisTransaction> {
  private client: BatchClient | undefined;
  private readonly cluster: boolean;
  private readonly markerPrefix: string;
  private readonly batchWrites: number;

  constructor(
    private readonly sinkId: string,
    private readonly options: RedisSinkOptions,
    private readonly toWrite: (value: T) => RedisWrite,
  ) {
    super();
    this.cluster = parseRedisUrl(options.connection.url).cluster;
    this.markerPrefix = options.markerPrefix ?? 'tidemark:sink';
    for (const [what, v] of [
      ['sink id', sinkId],
      ['marker prefix', this.markerPrefix],
    ] as const)
      if (v === '' || /[{}]/.test(v))
        throw new InvalidArgumentError(
          `Redis sink '${sinkId}': the ${what} '${v}' must be non-empty and contain no '{' or '}' (they form hash tags)`,
        );
    this.batchWrites = options.maxBatchWrites ?? 4096;
    if (!Number.isSafeInteger(this.batchWrites) || this.batchWrites < 1)
      throw new InvalidArgumentError(
        `Redis sink '${sinkId}': maxBatchWrites must be a positive integer, got ${options.maxBatchWrites}`,
      );
  }

  private redis(): BatchClient {
    if (this.client === undefined) {
      const c = connectRedis(this.options.connection, `tidemark-sink-${this.sinkId}`);
      c.defineCommand('tidemarkSinkBatch', { lua: BATCH_SCRIPT });
      this.client = c as BatchClient;
    }
    return this.client;
  }

  protected beginTransaction(ctx: TransactionContext): RedisTransaction {
    return { id: ctx.uniqueName, writes: [], batchWrites: this.batchWrites };
  }

  protected invoke(txn: RedisTransaction, value: T): void {
    const w = this.toWrite(value);
    if (w[0] === 'xadd' && (w[2].length === 0 || w[2].length > MAX_WRITE_ARGS))
      throw new InvalidArgumentError(
        `Redis sink '${this.sinkId}': a stream entry for key '${w[1]}' needs between 1 and ${MAX_WRITE_ARGS / 2} fields, got ${w[2].length / 2}`,
      );
    txn.writes.push(w);
  }

  protected preCommit(): void {}

  /** The marker of one batch: in the batch's hash slot on a cluster. */
  private marker(txn: RedisTransaction, batch: Batch): string {
    const m = `${this.markerPrefix}:${this.sinkId}:${txn.id}:${batch.index}`;
    return this.cluster ? `${m}:{${slotTag(batch.slot)}}` : m;
  }

  protected async commit(txn: RedisTransaction): Promise<void> {
    if (txn.writes.length === 0) return;
    const client = this.redis();
    if (txn.batchWrites === undefined && !this.cluster) {
      // A transaction of a version that committed in one script, under one marker: done if set.
      const legacy = `${this.markerPrefix}:${this.sinkId}:${txn.id}`;
      if ((await client.exists(legacy)) === 1) return;
    }
    const batches = planBatches(txn.writes, this.cluster, txn.batchWrites ?? 4096);
    const ttl = this.options.markerTtlMs ?? 7 * 24 * 3600_000;
    // Batches of one slot in order, each after the previous succeeded; slots side by side.
    const bySlot = new Map<number, Batch[]>();
    for (const b of batches) {
      const list = bySlot.get(b.slot);
      if (list === undefined) bySlot.set(b.slot, [b]);
      else list.push(b);
    }
    const queue = [...bySlot.values()];
    let failure: Error | undefined;
    const worker = async () => {
      for (let chain = queue.shift(); chain !== undefined && failure === undefined; chain = queue.shift()) {
        for (const b of chain) {
          if (failure !== undefined) return;
          try {
            await client.tidemarkSinkBatch(batchCall(this.marker(txn, b), ttl, b));
          } catch (e) {
            failure ??= new StorageError(
              `Redis sink '${this.sinkId}': batch ${b.index + 1} of ${batches.length} of transaction ${txn.id}${this.cluster ? ` (hash slot ${b.slot})` : ''} was not committed: ${(e as Error).message}. Batches before it are committed and are skipped when the commit is retried after a restore.`,
              { cause: e },
            );
            return;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SLOTS_IN_FLIGHT, queue.length) }, worker));
    if (failure !== undefined) throw failure;
  }

  protected abort(): void {}

  override close(): void {
    super.close();
    this.client?.disconnect();
  }
}

/** Exactly-once Redis sinks for `stream.sinkTo(...)`. */
export const RedisSink = {
  /** Appends each record to the stream `key(value)` as the fields `fields(value)`. */
  stream<T>(
    sinkId: string,
    options: RedisSinkOptions & {
      key: (value: T) => string;
      fields: (value: T) => Record<string, string | number>;
    },
  ): SinkFactory<T> {
    return {
      name: 'redisSink',
      create: () =>
        new RedisSinkOperator<T>(sinkId, options, (v) => [
          'xadd',
          options.key(v),
          Object.entries(options.fields(v)).flatMap(([f, x]) => [f, String(x)]),
        ]),
    };
  },
  /** Sets hash field `field(value)` of hash `key(value)` to `value(value)` (last write wins). */
  hash<T>(
    sinkId: string,
    options: RedisSinkOptions & {
      key: (value: T) => string;
      field: (value: T) => string;
      value: (value: T) => string | number;
    },
  ): SinkFactory<T> {
    return {
      name: 'redisSink',
      create: () =>
        new RedisSinkOperator<T>(sinkId, options, (v) => [
          'hset',
          options.key(v),
          options.field(v),
          String(options.value(v)),
        ]),
    };
  },
};
