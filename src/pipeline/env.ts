import { z } from 'zod';

/**
 * The parsers of environment values every config slice uses (src/config.ts and the `config.ts` of each
 * source). They see a variable's text only when it is set: src/config.ts treats an empty or
 * whitespace-only value as unset, so that `.default()` applies.
 */

/** A whole number in min..max. Decimal digits only: no '0x10', '1e3' or ' ' sneaking through Number(). */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

/** true, false, 1 or 0, in any case. */
export const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0'], { error: 'must be true or false' }))
  .transform((v) => v === 'true' || v === '1');

/** A URL with one of the given protocols (`['http:', 'https:']`). */
export const url = (protocols: readonly string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  );

/**
 * A comma-separated list of at least one item, each trimmed and passing `valid`; empty items are
 * skipped. `what` names the items in the message: "must be comma-separated NATS subjects; "a b" is not one".
 */
export const list = (what: string, valid: (item: string) => boolean) =>
  z.string().transform((value, ctx) => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const bad = items.find((s) => !valid(s));
    if (items.length === 0 || bad !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `must be comma-separated ${what}${bad === undefined ? '' : `; "${bad}" is not one`}`,
      });
      return z.NEVER;
    }
    return items;
  });

/** The values of a slice's variables once parsed: `EnvOf<typeof OTLP_NATS_ENV>`. */
export type EnvOf<Shape extends Record<string, z.ZodType>> = { [K in keyof Shape]: z.output<Shape[K]> };
