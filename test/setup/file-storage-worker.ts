// A second process for the file storage tests: commits the given checkpoint ids (retaining all)
// and prints one line per id: `ok <id>` or `<error name> <id>`.
// Usage: node --import tsx file-storage-worker.ts <dir> <job> <epoch> <id,id,...>
import { FileCheckpointStorage } from '../../state/storage/file.js';

const [dir = '', job = '', epoch = '0', ids = ''] = process.argv.slice(2);
const storage = new FileCheckpointStorage(dir);
await storage.open();
const lines = await Promise.all(
  ids.split(',').map(async (id) => {
    try {
      await storage.commit(
        job,
        Number(epoch),
        Number(id),
        new TextEncoder().encode(`from ${process.pid}`),
        [],
        {
          retain: 1000,
        },
      );
      return `ok ${id}`;
    } catch (e) {
      return `${(e as Error).name} ${id}`;
    }
  }),
);
process.stdout.write(`${lines.join('\n')}\n`);
await storage.close();
