/** `tidemark checkpoints list|show|delete` and `tidemark savepoint`. */
import { decodeMetadata } from '../../state/snapshot/format.js';
import type { CheckpointInfo, CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import { requestSavepoint } from './control.js';
import { UsageError } from './load-job.js';
import { DEFAULT_STORAGE } from './run-command.js';
import { openStorage, type StorageCommandFlags, storageUrl } from './secrets.js';

/** The storage of a `checkpoints` command: `--storage`, `TIDEMARK_CHECKPOINT_STORAGE` or the default. */
function storageOf(flags: StorageCommandFlags): CheckpointStorage {
  return openStorage(storageUrl(flags.storage) ?? DEFAULT_STORAGE, {
    url: flags.storage,
    redisPasswordFile: flags.redisPasswordFile,
  });
}

const fmt = new Intl.NumberFormat('en-US');

/** `checkpoints list`: every stored checkpoint of one job (or of every job). */
export async function listCheckpoints(
  flags: StorageCommandFlags & { job?: string; json?: boolean },
): Promise<number> {
  const storage = storageOf(flags);
  await storage.open();
  try {
    const jobs = flags.job !== undefined ? [flags.job] : await storage.listJobs();
    const rows: {
      job: string;
      id: number;
      time: string;
      bytes: number;
      chunks: number;
      kind: string;
      latest: boolean;
    }[] = [];
    for (const job of jobs) {
      const latest = await storage.latest(job);
      for (const c of await storage.list(job))
        rows.push({
          job,
          id: c.checkpointId,
          time: new Date(c.timestamp).toISOString(),
          bytes: c.sizeBytes,
          chunks: c.chunkCount,
          kind: c.savepoint ? 'savepoint' : 'checkpoint',
          latest: c.checkpointId === latest,
        });
    }
    if (flags.json === true) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else if (rows.length === 0) process.stdout.write(`no checkpoints in ${storage.description}\n`);
    else
      for (const r of rows)
        process.stdout.write(
          `${r.job}\t${r.kind} ${r.id}${r.latest ? ' (latest)' : ''}\t${r.time}\t${fmt.format(r.bytes)} bytes\t${r.chunks} chunks\n`,
        );
    return 0;
  } finally {
    await storage.close();
  }
}

/** `checkpoints show`: the operators, parallelism and key groups of one checkpoint. */
export async function showCheckpoint(
  id: number,
  flags: StorageCommandFlags & { job: string; json?: boolean },
): Promise<number> {
  const storage = storageOf(flags);
  await storage.open();
  try {
    const info = await storedCheckpoint(storage, flags.job, id);
    const meta = decodeMetadata(await storage.readMetadata(flags.job, id), {
      jobId: flags.job,
      checkpointId: id,
    });
    // NOTE: the time is the commit's, as `checkpoints list` shows it; the trigger time is the metadata's.
    const time = new Date(info.timestamp).toISOString();
    const triggered = new Date(meta.timestamp).toISOString();
    if (flags.json === true) {
      process.stdout.write(
        `${JSON.stringify(
          {
            job: meta.jobId,
            checkpointId: meta.checkpointId,
            savepoint: meta.savepoint,
            time,
            triggered,
            bytes: info.sizeBytes,
            operators: meta.operators.map((o) => ({
              id: o.operatorId,
              name: o.name,
              parallelism: o.parallelism,
              maxParallelism: o.maxParallelism,
              keyed: o.keyed,
              keyGroups: o.keyGroups.length,
              chunks: new Set(o.keyGroups.flatMap((k) => k.chunks)).size,
            })),
          },
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    process.stdout.write(
      `${meta.savepoint ? 'savepoint' : 'checkpoint'} ${meta.checkpointId} of job '${meta.jobId}', completed ${time} (triggered ${triggered}), ${fmt.format(info.sizeBytes)} bytes in ${info.chunkCount} chunks\n`,
    );
    for (const o of meta.operators)
      process.stdout.write(
        `  operator '${o.name}' (${o.operatorId}): parallelism ${o.parallelism}, maxParallelism ${o.maxParallelism}${o.keyed ? `, ${o.keyGroups.length} key groups with state` : ''}\n`,
      );
    return 0;
  } finally {
    await storage.close();
  }
}

/** `checkpoints delete`. */
export async function deleteCheckpoint(
  id: number,
  flags: StorageCommandFlags & { job: string },
): Promise<number> {
  const storage = storageOf(flags);
  await storage.open();
  try {
    await storedCheckpoint(storage, flags.job, id);
    await storage.delete(flags.job, id);
    process.stdout.write(`deleted checkpoint ${id} of job '${flags.job}'\n`);
    return 0;
  } finally {
    await storage.close();
  }
}

/** What `list` says of checkpoint `id`; a {@link UsageError} naming the stored ones if there is none. */
async function storedCheckpoint(
  storage: CheckpointStorage,
  job: string,
  id: number,
): Promise<CheckpointInfo> {
  const stored = await storage.list(job);
  const info = stored.find((c) => c.checkpointId === id);
  if (info !== undefined) return info;
  throw new UsageError(
    stored.length === 0
      ? `job '${job}' has no checkpoints in ${storage.description}`
      : `job '${job}' has no checkpoint ${id} in ${storage.description} (it has ${stored.map((c) => c.checkpointId).join(', ')})`,
  );
}

/** `savepoint <job-id>`: asks the running job for a savepoint. */
export async function savepointCommand(jobId: string): Promise<number> {
  const id = await requestSavepoint(jobId);
  process.stdout.write(
    `savepoint ${id} of job '${jobId}' completed; resume with: tidemark run <job> --restore ${id}\n`,
  );
  return 0;
}
