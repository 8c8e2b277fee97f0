/** The `tidemark/testing` entry: tools to test jobs. */

export type { OperatorSubtaskState } from '../../state/snapshot/types.js';
export { ManualClock } from '../clock.js';
export type {
  ExactlyOnceOptions,
  ExactlyOnceReport,
  FailurePlanOptions,
  FailureSite,
  JobOutput,
  PlannedFailure,
  RescalingOptions,
  StorageFaults,
} from './exactly-once.js';
export {
  checkExactlyOnce,
  checkJobRescaling,
  describeFailure,
  FAILURE_SITES,
  FailureInjector,
  FaultyStorage,
  failurePlans,
  InjectedFailure,
} from './exactly-once.js';
export type {
  ChannelOption,
  EmittedRecord,
  HarnessEvent,
  HarnessOptions,
  HarnessTimer,
  WatermarkStatus,
} from './harness.js';
export { OperatorHarness } from './harness.js';
export { CheckNotExercisedError } from './not-exercised.js';
export { assertOutputEqualsSorted, formatHarnessEvent } from './output-assertions.js';
export type {
  CheckOptions,
  EventStreamOptions,
  HarnessStep,
  JobUnderTest,
  LateStream,
  LateStreamOptions,
  SimulationTiming,
  TimeConstants,
  TimedEvent,
  TimingInvarianceOptions,
  WatermarkTimingOptions,
} from './properties.js';
export {
  assertSameResults,
  boundedPermutations,
  canonical,
  checkInterleavingInvariance,
  checkOrderInvariance,
  checkParallelismInvariance,
  checkRescaling,
  checkTimingInvariance,
  checkWatermarkTimingInvariance,
  diffResults,
  eventStreams,
  formatEvents,
  KeySequenceChecker,
  lateStreams,
} from './properties.js';
export { SeededRandom } from './random.js';
export type { EquivalenceOptions, JobOnInput, LateDataOptions } from './reference.js';
export { assertEquivalent, checkEquivalent, checkLateDataAccounted, LateDataLostError } from './reference.js';
export type { SimulationOptions, SimulationResult } from './simulation.js';
export { SimulationFailure, simulate, simulateJob } from './simulation.js';
export type { LeftoverState, StateCleanupOptions } from './state-cleanup.js';
export { checkStateCleanup, StateNotCleanedError } from './state-cleanup.js';
export type { TestStreamSplit, TestStreamStep } from './test-stream.js';
export { fromTestStream, TestStream } from './test-stream.js';
