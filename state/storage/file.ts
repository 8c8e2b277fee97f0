/**
 * {@link FileCheckpointStorage}: checkpoints in a directory, the embedded default.
 *
 * Layout (names of jobs and chunks are percent-encoded, see `encodeName`):
 * ```
 * <dir>/<job>/epoch                          the current epoch, a decimal number
 * <dir>/<job>/latest                         the manifest: JSON {format, latest, checkpoints: [{id, savepoint}]}
 * <dir>/<job>/chunks/<chunk>                 a chunk: 16-byte header (see chunk-format.ts) + payload
 * <dir>/<job>/checkpoints/<id>/metadata      the checkpoint's metadata, as given
 * <dir>/<job>/checkpoints/<id>/chunks.json   {chunkIds, timestamp, sizeBytes, chunkCount, savepoint}
 * <dir>/<job>/lock                           the job's lock (a file: JSON of who holds it)
 * <dir>/<job>/leader                         the job's leader lease: its holder's record and expiry (JSON)
 * <dir>/<job>/leader-generation              how many times the lease was taken
 * <dir>/<job>/run                            the job's run record (JSON, see leases.ts)
 * <dir>/<job>/tmp/                           files being written
 * ```
 * Every file is written to `tmp/`, fsynced and renamed into place. The commit point is the rename
 * of the manifest `latest`: a checkpoint directory that the manifest does not list (a commit that
 * crashed before its rename) is never read, and is removed by the next sweep.
 *
 * `newEpoch`, `commit`, `delete` and the sweep of abandoned chunks hold the job's lock, so two
 * processes on one machine (or on one shared file system with atomic `link`) cannot
 * both commit with different epochs. Chunk writes do not take the lock. The leader lease is read
 * and written holding the lock too, so taking, renewing and releasing it compare and set.
 */
import { randomUUID } from 'node:crypto';
import {
  access,
  constants,
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';
import {
  type CheckpointInfo,
  CheckpointNotFoundError,
  type CheckpointStorage,
  type CommitOptions,
  StorageError,
  type StorageSpec,
} from './checkpoint-storage.js';
import { CHUNK_HEADER_BYTES, decodeChunk, encodeChunk } from './chunk-format.js';
import {
  asUint8Array,
  checkChunkData,
  checkChunkId,
  checkCount,
  checkEpochAndLatest,
  checkJobId,
  checkpointsToDrop,
  immutableChunkError,
  missingChunkError,
  normalizeRetain,
  sameBytes,
  uniqueChunkIds,
} from './common.js';
import {
  type JobRunRecord,
  type LeaderRecord,
  type LeaseAttempt,
  type LeaseStore,
  parseLeaderRecord,
  parseRunRecord,
} from './leases.js';

/** Options of {@link FileCheckpointStorage}. */
export interface FileCheckpointStorageOptions {
  /** Chunks no committed checkpoint refers to are removed once older than this (default 10 minutes). */
  abandonedChunkGraceMs?: number;
  /** How long to wait for a job's lock before failing (default 10 s). */
  lockTimeoutMs?: number;
  /** A lock older than this is taken to be left by a crashed process and broken (default 30 s). */
  staleLockMs?: number;
  /** fsync files and directories before renaming them into place (default true; tests may turn it off). */
  fsync?: boolean;
  /**
   * Sweep every job's abandoned files on `open()` (default true). An instance opened only for the
   * leader leases (a job manager, a task manager looking for its leader) leaves that to the others.
   */
  sweepOnOpen?: boolean;
}

interface ManifestEntry {
  id: number;
  savepoint: boolean;
}

interface Manifest {
  latest: number | undefined;
  checkpoints: ManifestEntry[];
}

interface CheckpointFile {
  chunkIds: string[];
  timestamp: number;
  sizeBytes: number;
  chunkCount: number;
  savepoint: boolean;
}

interface LockOwner {
  pid: number;
  /** The worker thread (0 for the main thread); absent in locks of older versions. */
  threadId?: number;
  host: string;
  token: string;
  acquiredAt: number;
}

const MANIFEST_FORMAT = 1;
const EMPTY_MANIFEST: Manifest = { latest: undefined, checkpoints: [] };
/** Lock tokens held by this thread (to tell our own live locks from those of a dead process with our pid). */
const heldLockTokens = new Set<string>();
/** Per lock path, the tail of this thread's queue of operations waiting for it. */
const threadLocks = new Map<string, Promise<void>>();

/** Checkpoint storage in a directory; see the contract in `checkpoint-storage.ts` and the layout above. */
export class FileCheckpointStorage implements CheckpointStorage {
  readonly description: string;
  private readonly dir: string;
  private readonly graceMs: number;
  private readonly lockTimeoutMs: number;
  private readonly staleLockMs: number;
  private readonly fsync: boolean;
  private opened = false;
  /** Damaged manifests already warned about (once each). */
  private readonly warnedManifests = new Set<string>();

  constructor(
    dir: string,
    private readonly options: FileCheckpointStorageOptions = {},
  ) {
    if (typeof dir !== 'string' || dir.length === 0)
      throw new StorageError('file checkpoint storage: the directory must be a non-empty path');
    this.dir = resolve(dir);
    this.description = `file://${this.dir}`;
    this.graceMs = options.abandonedChunkGraceMs ?? 10 * 60_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.staleLockMs = options.staleLockMs ?? 30_000;
    this.fsync = options.fsync ?? true;
  }

  writerSpec(): StorageSpec {
    return { kind: 'file', dir: this.dir, options: { ...this.options } };
  }

  async open(): Promise<void> {
    try {
      await makeDirectories(this.dir);
      await access(this.dir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (e) {
      throw new StorageError(`${this.description}: cannot use the directory: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.opened = true;
    if (this.options.sweepOnOpen === false) return;
    // NOTE: the sweep on open is best effort: a job whose lock is busy is skipped (its holder sweeps).
    for (const jobId of await this.jobDirs())
      await this.withLock(jobId, 'sweep', true, () => this.sweep(jobId)).catch((e: unknown) => {
        if (!(e instanceof LockBusyError))
          warn(`${this.description}: sweep of job '${jobId}' on open failed: ${(e as Error).message}`);
      });
  }

  async close(): Promise<void> {
    this.opened = false;
  }

  async newEpoch(jobId: string): Promise<number> {
    return this.op('newEpoch', jobId, async () => {
      await this.ensureJobDirs(jobId);
      return this.withLock(jobId, 'newEpoch', false, async (checkStillHeld) => {
        const epoch = (await this.readEpoch(jobId)) + 1;
        await checkStillHeld();
        await this.writeDurable(jobId, this.path(jobId, 'epoch'), `${epoch}\n`);
        await this.syncDir(this.jobDir(jobId));
        return epoch;
      });
    });
  }

  async currentEpoch(jobId: string): Promise<number> {
    return this.op('currentEpoch', jobId, () => this.readEpoch(jobId));
  }

  async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    return this.op('writeChunk', jobId, async () => {
      checkChunkId(jobId, chunkId);
      checkChunkData(jobId, chunkId, data);
      await this.ensureJobDirs(jobId);
      const encoded = encodeChunk(data);
      const target = this.chunkPath(jobId, chunkId);
      const tmp = await this.writeTemp(jobId, encoded);
      try {
        const existing = await readIfExists(target);
        if (existing !== undefined && sameBytes(existing, encoded)) {
          // A retry with the same bytes: keep the file, restart its grace period.
          const now = new Date();
          try {
            await utimes(target, now, now);
            await unlink(tmp);
            return;
          } catch (e) {
            if (code(e) !== 'ENOENT') throw e;
          }
        } else if (existing !== undefined) {
          // NOTE: different bytes under a name that exists: allowed for a chunk of an abandoned
          // checkpoint, refused for one a committed checkpoint refers to (chunks are immutable).
          await this.withLock(jobId, 'writeChunk', false, async () => {
            if ((await this.referencedChunks(jobId)).has(chunkId)) throw immutableChunkError(jobId, chunkId);
            await rename(tmp, target);
          });
          return;
        }
        await rename(tmp, target);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    });
  }

  async readChunk(jobId: string, chunkId: string): Promise<Uint8Array> {
    return this.op('readChunk', jobId, async () => {
      checkChunkId(jobId, chunkId);
      const bytes = await readIfExists(this.chunkPath(jobId, chunkId));
      if (bytes === undefined) throw new CheckpointNotFoundError(jobId, `chunk '${chunkId}'`);
      return decodeChunk(jobId, chunkId, bytes);
    });
  }

  async commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options: CommitOptions = {},
  ): Promise<void> {
    return this.op('commit', jobId, async () => {
      checkCount(jobId, 'epoch', epoch);
      checkCount(jobId, 'checkpoint id', checkpointId);
      if (!(metadata instanceof Uint8Array))
        throw new StorageError(`job '${jobId}': metadata must be a Uint8Array`, { jobName: jobId });
      const retain = normalizeRetain(jobId, options.retain);
      const unique = uniqueChunkIds(jobId, chunkIds);
      const savepoint = options.savepoint === true;
      await this.ensureJobDirs(jobId);
      await this.withLock(jobId, 'commit', false, async (checkStillHeld) => {
        const manifest = await this.readManifest(jobId);
        checkEpochAndLatest(jobId, epoch, await this.readEpoch(jobId), checkpointId, manifest.latest);
        let sizeBytes = metadata.byteLength;
        for (const chunkId of unique) {
          const size = await sizeIfExists(this.chunkPath(jobId, chunkId));
          if (size === undefined) throw missingChunkError(jobId, chunkId, checkpointId);
          sizeBytes += size - CHUNK_HEADER_BYTES;
        }
        const record: CheckpointFile = {
          chunkIds: unique,
          timestamp: Date.now(),
          sizeBytes,
          chunkCount: unique.length,
          savepoint,
        };
        const staging = join(this.jobDir(jobId), 'tmp', `cp-${checkpointId}-${randomUUID()}`);
        await mkdir(staging);
        await this.writeFileSynced(join(staging, 'metadata'), metadata);
        await this.writeFileSynced(join(staging, 'chunks.json'), JSON.stringify(record));
        await this.syncDir(staging);
        const cpDir = this.checkpointDir(jobId, checkpointId);
        // Left by a commit that crashed before its manifest rename (its id is above the latest).
        await rm(cpDir, { recursive: true, force: true });
        await rename(staging, cpDir);
        await this.syncDir(join(this.jobDir(jobId), 'checkpoints'));
        await this.syncDir(join(this.jobDir(jobId), 'chunks'));
        const entries = [...manifest.checkpoints, { id: checkpointId, savepoint }];
        const drop = new Set(
          checkpointsToDrop(
            entries.map((e) => ({ checkpointId: e.id, savepoint: e.savepoint })),
            retain,
          ),
        );
        const kept = entries.filter((e) => !drop.has(e.id));
        await checkStillHeld();
        await this.writeManifest(jobId, { latest: checkpointId, checkpoints: kept }); // the commit point
        // NOTE: the commit has happened: cleaning up after it must not make it look failed.
        try {
          await this.removeCheckpoints(jobId, [...drop], kept);
          await this.sweep(jobId);
        } catch (e) {
          warn(
            `${this.description}: cleanup after commit ${checkpointId} of job '${jobId}': ${(e as Error).message}`,
          );
        }
      });
    });
  }

  async latest(jobId: string): Promise<number | undefined> {
    return this.op('latest', jobId, async () => (await this.readManifest(jobId)).latest);
  }

  async list(jobId: string): Promise<CheckpointInfo[]> {
    return this.op('list', jobId, () =>
      this.readConsistently(jobId, async (manifest) => {
        const out: CheckpointInfo[] = [];
        for (const entry of manifest.checkpoints) {
          const record = await this.readCheckpointFile(jobId, entry.id);
          out.push({
            checkpointId: entry.id,
            timestamp: record.timestamp,
            sizeBytes: record.sizeBytes,
            chunkCount: record.chunkCount,
            savepoint: record.savepoint,
          });
        }
        return out.sort((a, b) => a.checkpointId - b.checkpointId);
      }),
    );
  }

  async readMetadata(jobId: string, checkpointId: number): Promise<Uint8Array> {
    return this.op('readMetadata', jobId, () => {
      checkCount(jobId, 'checkpoint id', checkpointId);
      return this.readConsistently(jobId, async (manifest) => {
        if (!manifest.checkpoints.some((e) => e.id === checkpointId))
          throw new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
        return asUint8Array(await readFile(join(this.checkpointDir(jobId, checkpointId), 'metadata')));
      });
    });
  }

  async delete(jobId: string, checkpointId: number): Promise<void> {
    return this.op('delete', jobId, async () => {
      checkCount(jobId, 'checkpoint id', checkpointId);
      const notFound = () => new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
      if ((await readIfExists(this.path(jobId, 'latest'))) === undefined) throw notFound();
      await this.withLock(jobId, 'delete', false, async (checkStillHeld) => {
        const manifest = await this.readManifest(jobId);
        if (!manifest.checkpoints.some((e) => e.id === checkpointId)) throw notFound();
        const kept = manifest.checkpoints.filter((e) => e.id !== checkpointId);
        const latest = kept.length === 0 ? undefined : Math.max(...kept.map((e) => e.id));
        await checkStillHeld();
        await this.writeManifest(jobId, { latest, checkpoints: kept });
        await this.removeCheckpoints(jobId, [checkpointId], kept);
      });
    });
  }

  async listJobs(): Promise<string[]> {
    this.checkOpen();
    try {
      const out: string[] = [];
      for (const jobId of await this.jobDirs())
        if ((await this.readManifest(jobId)).checkpoints.length > 0) out.push(jobId);
      return out.sort();
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(`${this.description}: listJobs failed: ${(e as Error).message}`, { cause: e });
    }
  }

  leases(): LeaseStore {
    return {
      description: this.description,
      acquire: (jobId, record) => this.op('acquireLease', jobId, () => this.acquireLease(jobId, record)),
      renew: (jobId, token, leaseMs) =>
        this.op('renewLease', jobId, () =>
          this.withLease(jobId, 'renewLease', async (held) => {
            if (held?.token !== token) return false;
            await this.writeLease(jobId, held, leaseMs);
            return true;
          }),
        ),
      release: (jobId, token) =>
        this.op('releaseLease', jobId, () =>
          this.withLease(jobId, 'releaseLease', async (held) => {
            if (held?.token === token) await rm(this.path(jobId, 'leader'), { force: true });
          }),
        ),
      holder: (jobId) => this.op('holder', jobId, async () => (await this.readLease(jobId))?.record),
      readRun: (jobId) =>
        this.op('readRun', jobId, async () =>
          parseRunRecord((await readIfExists(this.path(jobId, 'run')))?.toString('utf8')),
        ),
      writeRun: (jobId, token, run: JobRunRecord) =>
        this.op('writeRun', jobId, () =>
          this.withLease(jobId, 'writeRun', async (held) => {
            if (held?.token !== token) return false;
            await this.writeDurable(jobId, this.path(jobId, 'run'), JSON.stringify(run));
            return true;
          }),
        ),
    };
  }

  private async acquireLease(jobId: string, record: LeaderRecord): Promise<LeaseAttempt> {
    return this.withLease(jobId, 'acquireLease', async (held, remainingMs) => {
      if (held !== undefined) return { acquired: false, holder: held, remainingMs };
      const path = this.path(jobId, 'leader-generation');
      const generation = Number((await readIfExists(path))?.toString('utf8').trim() ?? '0') + 1;
      await this.writeDurable(jobId, path, `${generation}\n`);
      await this.writeLease(jobId, record, record.leaseMs);
      return { acquired: true, generation };
    });
  }

  /** Runs `fn` holding the job's lock, with the live lease (none if it expired) and its remaining time. */
  private async withLease<T>(
    jobId: string,
    op: string,
    fn: (held: LeaderRecord | undefined, remainingMs: number | undefined) => Promise<T>,
  ): Promise<T> {
    await this.ensureJobDirs(jobId);
    return this.withLock(jobId, op, false, async () => {
      const lease = await this.readLease(jobId);
      return fn(lease?.record, lease?.remainingMs);
    });
  }

  /** The live lease of a job: its record and how long until it expires (an expired one is none). */
  private async readLease(jobId: string): Promise<{ record: LeaderRecord; remainingMs: number } | undefined> {
    const text = (await readIfExists(this.path(jobId, 'leader')))?.toString('utf8');
    const record = parseLeaderRecord(text);
    if (record === undefined || text === undefined) return undefined;
    const remainingMs = Number((JSON.parse(text) as { expiresAt?: unknown }).expiresAt) - Date.now();
    return remainingMs > 0 ? { record, remainingMs } : undefined;
  }

  private async writeLease(jobId: string, record: LeaderRecord, leaseMs: number): Promise<void> {
    // NOTE: expiry by this host's wall clock: job managers sharing a directory on several hosts
    // need their clocks in step (NTP) to well within a lease.
    const json = JSON.stringify({ ...record, expiresAt: Date.now() + leaseMs });
    await this.writeDurable(jobId, this.path(jobId, 'leader'), json);
  }

  // ---- paths

  private jobDir(jobId: string): string {
    return join(this.dir, encodeName(jobId, 'job id'));
  }

  private path(jobId: string, name: string): string {
    return join(this.jobDir(jobId), name);
  }

  private chunkPath(jobId: string, chunkId: string): string {
    return join(this.jobDir(jobId), 'chunks', encodeName(chunkId, 'chunk id'));
  }

  private checkpointDir(jobId: string, checkpointId: number): string {
    return join(this.jobDir(jobId), 'checkpoints', String(checkpointId));
  }

  private async ensureJobDirs(jobId: string): Promise<void> {
    const base = this.jobDir(jobId);
    for (const sub of ['chunks', 'checkpoints', 'tmp']) await mkdir(join(base, sub), { recursive: true });
  }

  private async jobDirs(): Promise<string[]> {
    const out: string[] = [];
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const jobId = decodeName(entry.name);
      if (jobId !== undefined) out.push(jobId);
    }
    return out;
  }

  // ---- reading

  private async readEpoch(jobId: string): Promise<number> {
    const bytes = await readIfExists(this.path(jobId, 'epoch'));
    if (bytes === undefined) return 0;
    const epoch = Number(bytes.toString('utf8').trim());
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new StorageError(`job '${jobId}': the epoch file ${this.path(jobId, 'epoch')} is damaged`, {
        jobName: jobId,
      });
    return epoch;
  }

  private async readManifest(jobId: string): Promise<Manifest> {
    checkJobId(jobId);
    const path = this.path(jobId, 'latest');
    const bytes = await readIfExists(path);
    if (bytes === undefined) return EMPTY_MANIFEST;
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      return this.rebuildManifest(jobId, path, 'not JSON');
    }
    const m = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as {
      format?: unknown;
      latest?: unknown;
      checkpoints?: unknown;
    };
    if (typeof m.format === 'number' && m.format !== MANIFEST_FORMAT)
      throw new StorageError(
        `job '${jobId}': the manifest ${path} has format ${m.format}, which this tidemark does not read (it reads ${MANIFEST_FORMAT})`,
        { jobName: jobId },
      );
    if (m.format !== MANIFEST_FORMAT) return this.rebuildManifest(jobId, path, 'no format');
    if (!Array.isArray(m.checkpoints)) return this.rebuildManifest(jobId, path, 'no checkpoint list');
    const checkpoints: ManifestEntry[] = [];
    for (const e of m.checkpoints as { id?: unknown; savepoint?: unknown }[]) {
      if (
        typeof e !== 'object' ||
        e === null ||
        !Number.isSafeInteger(e.id) ||
        typeof e.savepoint !== 'boolean'
      )
        return this.rebuildManifest(jobId, path, 'a bad checkpoint entry');
      checkpoints.push({ id: e.id as number, savepoint: e.savepoint });
    }
    if (m.latest !== null && !Number.isSafeInteger(m.latest))
      return this.rebuildManifest(jobId, path, 'a bad latest id');
    return { latest: m.latest === null ? undefined : (m.latest as number), checkpoints };
  }

  /**
   * The manifest of a job whose manifest file is damaged (garbage, truncated by hand): every
   * checkpoint directory with a readable record and metadata, the newest as the latest, as the
   * pointer would say (a commit moves it to the checkpoint it writes; a delete to the newest left).
   * The next commit writes a whole manifest again. Restoring falls back from a damaged checkpoint
   * to the previous one as ever.
   *
   * NOTE: a directory left by a commit that crashed before its manifest rename is listed too: it
   * is complete (its chunks were checked before it was renamed into place), only never announced.
   */
  private async rebuildManifest(jobId: string, path: string, detail: string): Promise<Manifest> {
    const checkpoints: ManifestEntry[] = [];
    for (const name of await readdirIfExists(join(this.jobDir(jobId), 'checkpoints'))) {
      const id = Number(name);
      if (!/^[1-9]\d*$/.test(name) || !Number.isSafeInteger(id)) continue;
      try {
        const record = await this.readCheckpointFile(jobId, id);
        if (!Array.isArray(record.chunkIds)) continue;
        await access(join(this.checkpointDir(jobId, id), 'metadata'), constants.R_OK);
        checkpoints.push({ id, savepoint: record.savepoint === true });
      } catch {
        // Not a checkpoint this storage can read: left out.
      }
    }
    checkpoints.sort((a, b) => a.id - b.id);
    const latest = checkpoints.at(-1)?.id;
    const key = `${jobId}\u0000${path}`;
    if (!this.warnedManifests.has(key)) {
      this.warnedManifests.add(key);
      warn(
        `job '${jobId}': the manifest ${path} is damaged (${detail}); using the ${checkpoints.length} checkpoint(s) found in its directory${latest === undefined ? '' : `, the latest ${latest}`}`,
      );
    }
    return { latest, checkpoints };
  }

  private async readCheckpointFile(jobId: string, checkpointId: number): Promise<CheckpointFile> {
    const path = join(this.checkpointDir(jobId, checkpointId), 'chunks.json');
    const text = await readFile(path, 'utf8');
    try {
      return JSON.parse(text) as CheckpointFile;
    } catch (e) {
      throw new StorageError(`job '${jobId}': ${path} is damaged: ${(e as Error).message}`, {
        jobName: jobId,
        checkpointId,
      });
    }
  }

  /**
   * Runs a read against the manifest; a file that vanished meanwhile (a concurrent retention or
   * delete) makes it start over with the new manifest.
   */
  private async readConsistently<T>(jobId: string, read: (m: Manifest) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const manifest = await this.readManifest(jobId);
      try {
        return await read(manifest);
      } catch (e) {
        if (code(e) !== 'ENOENT' || attempt >= 4) throw e;
      }
    }
  }

  /** Chunks that a checkpoint listed in the manifest refers to. */
  private async referencedChunks(jobId: string, entries?: readonly ManifestEntry[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const entry of entries ?? (await this.readManifest(jobId)).checkpoints)
      for (const chunkId of (await this.readCheckpointFile(jobId, entry.id)).chunkIds) out.add(chunkId);
    return out;
  }

  // ---- writing (the lock is held)

  private async writeManifest(jobId: string, manifest: Manifest): Promise<void> {
    const json = JSON.stringify({
      format: MANIFEST_FORMAT,
      latest: manifest.latest ?? null,
      checkpoints: manifest.checkpoints,
    });
    await this.writeDurable(jobId, this.path(jobId, 'latest'), json);
    await this.syncDir(this.jobDir(jobId));
  }

  /** Removes checkpoints (already out of the manifest) and their chunks that `kept` does not refer to. */
  private async removeCheckpoints(jobId: string, ids: readonly number[], kept: readonly ManifestEntry[]) {
    if (ids.length === 0) return;
    const referenced = await this.referencedChunks(jobId, kept);
    for (const id of ids) {
      let record: CheckpointFile | undefined;
      try {
        record = await this.readCheckpointFile(jobId, id);
      } catch (e) {
        if (code(e) !== 'ENOENT') throw e;
      }
      for (const chunkId of record?.chunkIds ?? [])
        if (!referenced.has(chunkId)) await rm(this.chunkPath(jobId, chunkId), { force: true });
      await rm(this.checkpointDir(jobId, id), { recursive: true, force: true });
    }
  }

  /**
   * Removes what no committed checkpoint uses: chunks and temporary files older than the grace
   * period, and checkpoint directories the manifest does not list.
   */
  private async sweep(jobId: string): Promise<void> {
    const manifest = await this.readManifest(jobId);
    const listed = new Set(manifest.checkpoints.map((e) => String(e.id)));
    const cutoff = Date.now() - this.graceMs;
    const base = this.jobDir(jobId);
    for (const name of await readdirIfExists(join(base, 'checkpoints')))
      if (!listed.has(name)) await rm(join(base, 'checkpoints', name), { recursive: true, force: true });
    const referenced = await this.referencedChunks(jobId, manifest.checkpoints);
    for (const sub of ['chunks', 'tmp'])
      for (const name of await readdirIfExists(join(base, sub))) {
        if (sub === 'chunks' && referenced.has(decodeName(name) ?? '')) continue;
        const path = join(base, sub, name);
        let mtimeMs: number;
        try {
          mtimeMs = (await stat(path)).mtimeMs;
        } catch (e) {
          if (code(e) === 'ENOENT') continue;
          throw e;
        }
        if (mtimeMs <= cutoff) await rm(path, { recursive: true, force: true });
      }
  }

  private async writeTemp(jobId: string, data: Uint8Array | string): Promise<string> {
    const tmp = join(this.jobDir(jobId), 'tmp', `${randomUUID()}.tmp`);
    await this.writeFileSynced(tmp, data);
    return tmp;
  }

  private async writeDurable(jobId: string, target: string, data: Uint8Array | string): Promise<void> {
    const tmp = await this.writeTemp(jobId, data);
    try {
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  private async writeFileSynced(path: string, data: Uint8Array | string): Promise<void> {
    const fh = await open(path, 'wx');
    try {
      await fh.writeFile(data);
      if (this.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private async syncDir(path: string): Promise<void> {
    if (!this.fsync) return;
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'r');
      await fh.sync();
    } catch (e) {
      // NOTE: some platforms and file systems cannot fsync a directory; the rename stays atomic.
      if (!['EISDIR', 'EINVAL', 'EPERM', 'EBADF'].includes(code(e) ?? '')) throw e;
    } finally {
      await fh?.close();
    }
  }

  // ---- locking

  /**
   * Runs `fn` holding the job's lock. The lock is the file `<job>/lock`, holding its owner as JSON.
   * It is written under `tmp/` first and then hard-linked into place: `link` is atomic and fails
   * when the name exists (also on NFS), so a lock never exists without its owner. Within one thread,
   * operations on a job queue on an in-memory mutex first, so the file lock is only ever contended
   * by other threads and processes. With `tryOnce`, a busy lock makes it fail at once.
   */
  private async withLock<T>(
    jobId: string,
    op: string,
    tryOnce: boolean,
    fn: (checkStillHeld: () => Promise<void>) => Promise<T>,
  ): Promise<T> {
    const lockPath = this.path(jobId, 'lock');
    const previous = threadLocks.get(lockPath);
    if (previous !== undefined && tryOnce) throw this.lockBusyError(jobId, op, lockPath, 0, undefined);
    let release: () => void = () => undefined;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const queued = (previous ?? Promise.resolve()).then(() => mine);
    threadLocks.set(lockPath, queued);
    try {
      await previous;
      return await this.withFileLock(jobId, op, tryOnce, lockPath, fn);
    } finally {
      release();
      if (threadLocks.get(lockPath) === queued) threadLocks.delete(lockPath);
    }
  }

  private async withFileLock<T>(
    jobId: string,
    op: string,
    tryOnce: boolean,
    lockPath: string,
    fn: (checkStillHeld: () => Promise<void>) => Promise<T>,
  ): Promise<T> {
    const owner: LockOwner = {
      pid: process.pid,
      threadId,
      host: hostname(),
      token: randomUUID(),
      acquiredAt: Date.now(),
    };
    const tmpDir = join(this.jobDir(jobId), 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const staged = join(tmpDir, `lock-${owner.token}`);
    await this.writeFileSynced(staged, JSON.stringify(owner));
    try {
      const deadline = Date.now() + this.lockTimeoutMs;
      for (let attempt = 0; ; attempt++) {
        try {
          await link(staged, lockPath);
          // The lock's age counts from now, not from when it was staged before waiting.
          const now = new Date();
          await utimes(lockPath, now, now);
          break;
        } catch (e) {
          if (code(e) !== 'EEXIST') throw e;
        }
        if (await this.breakIfStale(lockPath)) continue;
        if (tryOnce || Date.now() > deadline)
          throw this.lockBusyError(
            jobId,
            op,
            lockPath,
            tryOnce ? 0 : this.lockTimeoutMs,
            await readOwner(lockPath),
          );
        await sleep(Math.min(2 + attempt * 2, 25) + Math.random() * 5);
      }
    } finally {
      await rm(staged, { force: true });
    }
    heldLockTokens.add(owner.token);
    try {
      return await fn(() => this.checkStillHeld(jobId, lockPath, owner.token));
    } finally {
      // NOTE: remove the lock before forgetting its token: while the token is forgotten, a lock
      // with our pid, thread and that token looks like one left by a dead process that had our pid.
      const current = await readOwner(lockPath);
      if (current?.token === owner.token) await rm(lockPath, { force: true });
      heldLockTokens.delete(owner.token);
    }
  }

  private lockBusyError(
    jobId: string,
    op: string,
    lockPath: string,
    waitedMs: number,
    holder: LockOwner | undefined,
  ): LockBusyError {
    const by =
      holder === undefined
        ? ''
        : ` by pid ${holder.pid}${holder.threadId ? ` (thread ${holder.threadId})` : ''} on ${holder.host} since ${new Date(holder.acquiredAt).toISOString()}`;
    return new LockBusyError(
      `job '${jobId}': ${op}: the lock ${lockPath} is held${by} (waited ${waitedMs} ms; if no tidemark process uses this directory, remove it)`,
      { jobName: jobId },
    );
  }

  /** Throws unless the lock still has our token (checked right before a commit point). */
  private async checkStillHeld(jobId: string, lockPath: string, token: string): Promise<void> {
    const current = await readOwner(lockPath);
    if (current?.token !== token)
      throw new StorageError(
        `job '${jobId}': the lock ${lockPath} was taken over (judged stale) before the commit point; nothing was committed`,
        {
          jobName: jobId,
        },
      );
  }

  /**
   * Breaks a lock left by a crashed process: its owner was a process of this host that is gone (or
   * had our pid and thread but a token this thread does not hold: a dead process whose pid we
   * reuse), or it is older than `staleLockMs`. Another thread of this process is judged by age
   * only. Returns whether the caller should try to lock again.
   */
  private async breakIfStale(lockPath: string): Promise<boolean> {
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(lockPath)).mtimeMs;
    } catch (e) {
      if (code(e) === 'ENOENT') return true;
      throw e;
    }
    const owner = await readOwner(lockPath);
    const deadOwner =
      owner !== undefined &&
      owner.host === hostname() &&
      (owner.pid !== process.pid
        ? !processAlive(owner.pid)
        : (owner.threadId ?? 0) === threadId && !heldLockTokens.has(owner.token));
    if (!deadOwner && Date.now() - mtimeMs < this.staleLockMs) return false;
    // NOTE: rename first (atomic, and only one breaker wins), then look at what was moved: if the
    // lock was released and taken again since we read it, put the live one back.
    const aside = `${lockPath}.stale-${randomUUID()}`;
    try {
      await rename(lockPath, aside);
    } catch (e) {
      if (code(e) === 'ENOENT') return true;
      throw e;
    }
    try {
      const moved = await readOwner(aside);
      if (moved?.token !== owner?.token) {
        // NOTE: if yet another process took the lock in this instant, the owner of the moved lock
        // has lost it: its check right before the commit point fails, and nothing is committed.
        await link(aside, lockPath).catch(() => undefined);
      }
    } finally {
      await rm(aside, { recursive: true, force: true });
    }
    return true;
  }

  // ---- plumbing

  private checkOpen(): void {
    if (!this.opened) throw new StorageError(`${this.description}: storage is not open (call open() first)`);
  }

  /** Runs one public operation: checks, then turns unexpected errors into a {@link StorageError}. */
  private async op<T>(op: string, jobId: string, fn: () => Promise<T>): Promise<T> {
    this.checkOpen();
    checkJobId(jobId);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(`${this.description}: ${op} of job '${jobId}' failed: ${(e as Error).message}`, {
        cause: e,
        jobName: jobId,
      });
    }
  }
}

/**
 * A name as a file name: ASCII letters, digits, `_` and `-` stay, every other UTF-8 byte becomes
 * `%XX` (so `.`, `..`, `/` and case-insensitive clashes of other characters cannot happen).
 */
export function encodeName(name: string, what: string): string {
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length > 255)
    throw new StorageError(`${what} '${name.slice(0, 40)}...' is too long for a file name once encoded`);
  return out;
}

/** The name `encodeName` encoded, or undefined for a file name it cannot have made. */
export function decodeName(fileName: string): string | undefined {
  try {
    const name = decodeURIComponent(fileName);
    return encodeName(name, 'name') === fileName ? name : undefined;
  } catch {
    return undefined;
  }
}

function code(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e
    ? String((e as { code: unknown }).code)
    : undefined;
}

/**
 * `mkdir -p`, one level at a time. NOTE: not `mkdir(dir, { recursive: true })`, which never returns
 * (and keeps a core busy) where a missing directory cannot be made, as in `/proc` (Node 20).
 */
async function makeDirectories(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      if ((await stat(d)).isDirectory()) break;
      throw Object.assign(new Error(`${d} is not a directory`), { code: 'ENOTDIR' });
    } catch (e) {
      if (code(e) !== 'ENOENT') throw e;
    }
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse())
    try {
      await mkdir(d);
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
    }
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    throw e;
  }
}

async function sizeIfExists(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    throw e;
  }
}

async function readdirIfExists(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (e) {
    if (code(e) === 'ENOENT') return [];
    throw e;
  }
}

async function readOwner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(lockPath, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === 'EPERM';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function warn(message: string): void {
  process.emitWarning(message, { code: 'TIDEMARK_STORAGE' });
}

/** A job's lock held by another process or thread (a sweep on open skips the job: its holder sweeps). */
class LockBusyError extends StorageError {}
