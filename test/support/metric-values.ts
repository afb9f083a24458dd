import type { Counter } from 'prom-client';

/** Current value of a prom-client counter for the given labels, summed over the rest (0 when never incremented). */
export async function counterValue<L extends string>(
  counter: Counter<L>,
  labels: Partial<Record<L, string>> = {},
): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want),
    )
    .reduce((sum, v) => sum + v.value, 0);
}
