// The classic word count. Run it with:  npx tidemark run examples/wordcount.ts --parallelism 4
// It prints every rolling count update, then (when the input ends) one JSON object of the final
// counts, which is the same at every parallelism.
import { job } from 'tidemark';

export default job((env) => {
  const counts = env
    .fromElements('hello world', 'hello python', 'python is fun')
    .flatMap((line) => line.split(' '))
    .map((word) => ({ word, count: 1 }))
    .keyBy((r) => r.word)
    .reduce((a, b) => ({ word: a.word, count: a.count + b.count }));
  counts.print();
  counts.printSummary(
    (r) => r.word,
    (r) => r.count,
  );
});
