/** A heap keyed-state backend over every key group of `maxParallelism`, as the property tests use one. */
import { HeapKeyedStateBackend } from '../../state/heap-backend.js';
import { KeyGroupRange } from '../../state/key-groups.js';

export function heapBackend(maxParallelism: number, now: () => number = () => 0): HeapKeyedStateBackend {
  return new HeapKeyedStateBackend({
    maxParallelism,
    keyGroupRange: KeyGroupRange.all(maxParallelism),
    now,
    owner: 'test',
  });
}
