/**
 * The API's JSON keys are snake_case, like the columns they mostly are (README: HTTP API). Reports built
 * in TypeScript (camelCase) are converted at the boundary, keys of nested objects and arrays too.
 */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [
      key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      snakeCaseKeys(v),
    ]),
  );
}
