/** A slot's deployment with nothing to run, for tests of the task-manager pool's plumbing. */
import type { SlotInit } from '../../runtime/distributed/protocol.js';

export function emptySlotInit(slot: number): SlotInit {
  return {
    slot,
    slots: 2,
    jobPath: 'job.mts',
    overrides: {},
    planHash: 'h',
    tasks: [],
    placement: {},
    restore: [],
    attemptNumber: 0,
    runId: 'r',
    checkpointMode: 'exactly-once',
    fromSource: true,
  };
}
