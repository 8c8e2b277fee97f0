/** The `tidemark/testing` entry: tools to test jobs. */
export { ManualClock } from '../clock.js';
export type { TestStreamSplit, TestStreamStep } from './test-stream.js';
export { fromTestStream, TestStream } from './test-stream.js';
