// Module resolution hook: resolves the `tidemark` package to its TypeScript sources (the
// `tidemark-source` export condition) when tidemark runs from a source checkout.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions ?? [];
  if (conditions.includes('tidemark-source')) return nextResolve(specifier, context);
  return nextResolve(specifier, { ...context, conditions: [...conditions, 'tidemark-source'] });
}
