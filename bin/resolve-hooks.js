// Module resolution hooks of the `tidemark` command (registered before any job module loads):
// - from a source checkout, resolve the `tidemark` package to its TypeScript sources (the
//   `tidemark-source` export condition);
// - a job module outside any project that depends on tidemark still finds `tidemark` (this one).
let options = { source: false };

export function initialize(data) {
  options = data ?? options;
}

const packageJson = new URL('../package.json', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  let ctx = context;
  if (options.source && !(context.conditions ?? []).includes('tidemark-source'))
    ctx = { ...context, conditions: [...(context.conditions ?? []), 'tidemark-source'] };
  try {
    return await nextResolve(specifier, ctx);
  } catch (e) {
    if (specifier === 'tidemark' || specifier.startsWith('tidemark/'))
      return nextResolve(specifier, { ...ctx, parentURL: packageJson });
    throw e;
  }
}
