/** The `tidemark/testing` entry: tools to test jobs (grows with the testing toolkit). */
export { ManualClock } from '../clock.js';
