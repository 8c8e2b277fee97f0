/**
 * The wiring of a run: a task per subtask that runs here, and the channels of every network edge
 * between them: a local ring between two subtasks here, or one end of a channel to or from a
 * subtask elsewhere (another slot or host), which the {@link Placement} provides.
 */
import type { OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { JobGraph, StreamEdge } from '../graph/job-graph.js';
import { Channel } from '../task/channel.js';
import { Task, type TaskHost } from '../task/task.js';
import { connectedSubtasks, createWriter, type OutChannel } from '../task/writers.js';

/** Which subtasks run here, and the channel ends to the others. */
export interface Placement {
  /** True if subtask `subtaskIndex` of vertex `vertexId` runs here. */
  isLocal(vertexId: number, subtaskIndex: number): boolean;
  /** The sending end of the channel from a local producer to a consumer elsewhere. */
  outChannel(edge: StreamEdge, producer: Task, consumerIndex: number): OutChannel;
  /** The local channel that frames from a producer elsewhere feed. */
  inChannel(edge: StreamEdge, producerIndex: number, consumer: Task, label: string): Channel;
}

/** Every subtask runs here. */
export const ALL_HERE: Placement = {
  isLocal: () => true,
  outChannel: () => {
    throw new Error('every subtask runs here: no channel leaves this thread');
  },
  inChannel: () => {
    throw new Error('every subtask runs here: no channel comes from another thread');
  },
};

/**
 * Creates the tasks of the subtasks placed here (restored from `restore`, per subtask index and
 * operator id) and the channels of every edge they are on; the tasks are set up, not yet open.
 */
export function wireTasks(
  graph: JobGraph,
  host: TaskHost,
  restore: readonly (ReadonlyMap<string, OperatorSubtaskState> | undefined)[] | undefined,
  placement: Placement,
): Task[] {
  const tasks: Task[] = [];
  const byVertex = new Map<number, (Task | undefined)[]>();
  for (const v of graph.vertices) {
    const here: (Task | undefined)[] = [];
    for (let i = 0; i < v.parallelism; i++) {
      if (!placement.isLocal(v.id, i)) here.push(undefined);
      else {
        const t = new Task(host, v, i, restore?.[i] ?? new Map());
        here.push(t);
        tasks.push(t);
      }
    }
    byVertex.set(v.id, here);
  }
  const vertexOf = new Map(graph.vertices.flatMap((v) => v.nodes.map((n) => [n, v] as const)));
  for (const v of graph.vertices) {
    for (const edge of v.outputs) {
      const targetVertex = vertexOf.get(edge.target)!;
      const producers = byVertex.get(v.id)!;
      const consumers = byVertex.get(targetVertex.id)!;
      producers.forEach((producer, i) => {
        const to = connectedSubtasks(edge.partitioner, i, producers.length, consumers.length);
        if (producer === undefined) {
          // A producer elsewhere: its frames feed the consumers here.
          for (const j of to) {
            const consumer = consumers[j];
            if (consumer === undefined) continue;
            const c = placement.inChannel(
              edge,
              i,
              consumer,
              `${v.name} (${i + 1}/${producers.length}) -> ${consumer.describe()}`,
            );
            c.index = consumer.inputs.length;
            c.fromVertex = v.id;
            c.fromSubtask = i;
            consumer.inputs.push(c);
          }
          return;
        }
        const channels: OutChannel[] = to.map((j) => {
          const consumer = consumers[j];
          if (consumer === undefined) return placement.outChannel(edge, producer, j);
          const c = new Channel(
            graph.bufferCapacity,
            producer.outputGate,
            consumer.inputGate,
            edge.inputIndex,
            `${producer.describe()} -> ${consumer.describe()}`,
          );
          c.index = consumer.inputs.length;
          c.fromVertex = v.id;
          c.fromSubtask = i;
          consumer.inputs.push(c);
          return c;
        });
        producer.writers.set(
          edge,
          createWriter(edge.partitioner, channels, i, edge.target.maxParallelism, () => producer.describe()),
        );
      });
    }
  }
  for (const t of tasks) t.setup();
  return tasks;
}
