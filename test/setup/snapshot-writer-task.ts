// The work of snapshot-writer-worker.mjs: opens the storage from its spec and writes subtask
// snapshots whose key groups hold bytes derived from `name`, as a slot does for a checkpoint.
import { SnapshotWriter, type WrittenSnapshot } from '../../runtime/checkpoint/snapshot-writer.js';
import type { IncrementalSnapshot } from '../../state/snapshot/types.js';
import type { StorageSpec } from '../../state/storage/checkpoint-storage.js';
import { openStorageSpec } from '../../state/storage/open-storage.js';

/** The bytes of key group `g` written by writer `name`. */
export function groupBytes(name: string, g: number): Uint8Array {
  const out = new Uint8Array(3000 + g);
  for (let i = 0; i < out.length; i++) out[i] = (name.charCodeAt(i % name.length) + g + i) & 0xff;
  return out;
}

/** Writes one snapshot per operator of `operators` (subtask `subtask`, 8 key groups each). */
export async function run(args: {
  spec: StorageSpec;
  jobId: string;
  name: string;
  subtask: number;
  operators: string[];
}): Promise<WrittenSnapshot[]> {
  const storage = openStorageSpec(args.spec);
  await storage.open();
  try {
    const writer = new SnapshotWriter(storage, args.jobId, 16 * 1024);
    const start = args.subtask * 8;
    const snapshots: IncrementalSnapshot[] = args.operators.map((operatorId) => ({
      operatorId,
      subtaskIndex: args.subtask,
      parallelism: 4,
      maxParallelism: 32,
      keyed: true,
      watermark: 0,
      operatorState: new Uint8Array([args.subtask]),
      changed: new Map(
        Array.from({ length: 8 }, (_x, i) => [
          start + i,
          groupBytes(`${args.name}/${operatorId}`, start + i),
        ]),
      ),
      deltas: [],
      keyGroupStart: start,
      keyGroupEnd: start + 7,
    }));
    return await writer.writeAll(1, snapshots);
  } finally {
    await storage.close();
  }
}
