/** The queries of the benchmark, in order (a module of its own so the runner loads nothing else). */
export const QUERY_NAMES = ['q0', 'q1', 'q2', 'q3', 'q4', 'q5', 'q7', 'q8', 'q11', 'q12'] as const;
