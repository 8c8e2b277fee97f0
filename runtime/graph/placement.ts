/**
 * Where the subtasks of a job run when it is given several slots, as Flink's slot sharing does:
 * a run uses as many slots as its highest parallelism (no more than it is given), and subtask `i`
 * of every vertex runs in slot `i mod slots`. Each slot then holds one subtask of each vertex at
 * most, the subtasks of a forward edge stay together (no record crosses a thread on it), and a
 * vertex of parallelism 1 shares slot 0 with the others.
 */
import type { JobGraph } from './job-graph.js';

/** The slots of a run and the slot of every subtask. */
export interface SlotPlacement {
  /** Slots the run uses. */
  readonly slots: number;
  /** The slot that runs subtask `subtaskIndex` of vertex `vertexId`. */
  slotOf(vertexId: number, subtaskIndex: number): number;
}

/** The placement of `graph` on at most `available` slots. */
export function placeSubtasks(graph: JobGraph, available: number): SlotPlacement {
  const highest = graph.vertices.reduce((m, v) => Math.max(m, v.parallelism), 1);
  const slots = Math.max(1, Math.min(available, highest));
  return { slots, slotOf: (_v, i) => i % slots };
}
