/**
 * Watermark alignment groups of one thread's sources (Flink's `withWatermarkAlignment`): each
 * member reports its watermark; a member ahead of the group's minimum by more than the allowed
 * drift pauses, and is woken when the minimum advances.
 */
import type { AlignmentGroup } from '../../operators/contract.js';
import type { Task } from '../task/task.js';

/** The alignment groups of a run, by name. */
export class AlignmentGroups {
  private readonly groups = new Map<string, GroupState>();
  constructor(private readonly wakeUp: () => void) {}

  /** `task`'s membership of group `name` (created on first use). */
  member(name: string, task: Task): AlignmentGroup {
    let g = this.groups.get(name);
    if (g === undefined) this.groups.set(name, (g = new GroupState(this.wakeUp)));
    return g.member(task);
  }
}

/** The watermarks of the subtasks of one alignment group. */
class GroupState {
  private readonly watermarks = new Map<Task, number>();
  private readonly paused = new Set<Task>();
  private min = Number.NEGATIVE_INFINITY;
  constructor(private readonly wakeUp: () => void) {}

  member(task: Task): AlignmentGroup {
    this.watermarks.set(task, Number.NEGATIVE_INFINITY);
    return {
      report: (watermark) => this.report(task, watermark),
      minWatermark: () => {
        this.paused.add(task);
        return this.min;
      },
    };
  }

  private report(task: Task, watermark: number): void {
    this.watermarks.set(task, watermark);
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.watermarks.values()) if (w < min) min = w;
    if (min > this.min) {
      this.min = min;
      // The group advanced: paused members may read again.
      for (const t of this.paused) t.pollSourceAgain();
      this.paused.clear();
      this.wakeUp();
    }
  }
}
