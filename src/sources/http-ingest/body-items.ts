import type { PayloadEncoding } from '../../events/schema.js';
import {
  type InputContext,
  type Normalized,
  decodeUtf8,
  invalidUtf8Detail,
  makeReject,
  normalizeEvent,
  parseJson,
} from '../../events/normalize.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';

/*
 * The items of an HTTP ingest body and the record each becomes: shared by the route (http-ingest.ts)
 * and `chronicle replay-rejects`, which feeds a rejected item back through the same conversion.
 */

/** One item of a body: its raw text (or, when not UTF-8, its bytes in base64) and its parse. */
export interface BodyItem {
  raw: string;
  encoding: PayloadEncoding;
  parsed: Normalized<unknown>;
}

/** A body refused whole: not JSON (and not NDJSON), or a JSON body that is not UTF-8. */
export interface BodyRefusal {
  reason: 'invalid_json' | 'invalid_utf8';
  detail: string;
  raw: string;
  encoding: PayloadEncoding;
}

const NDJSON_TYPES = [
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/x-jsonlines',
];

function rawOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '(not serializable: nested too deeply)';
  }
}

/** An item that is not UTF-8: refused as `invalid_utf8`, its bytes kept (base64). */
function invalidUtf8Item(bytes: Uint8Array, what: string): BodyItem {
  return {
    raw: Buffer.from(bytes).toString('base64'),
    encoding: 'base64',
    parsed: { ok: false, reason: 'invalid_utf8', detail: invalidUtf8Detail(what) },
  };
}

/** The item a line of text (or of bytes that may not be UTF-8) is. */
export function lineItem(line: Uint8Array | string, what = 'the line'): BodyItem {
  const text = typeof line === 'string' ? line : decodeUtf8(line);
  if (text === undefined) return invalidUtf8Item(line as Uint8Array, what);
  return { raw: text, encoding: 'utf8', parsed: parseJson(text) };
}

/**
 * Splits a body into items: one JSON object, a JSON array, or NDJSON (one JSON value per line). A JSON
 * body must be UTF-8 as a whole; in NDJSON a line that is not UTF-8 is one bad item and the others
 * stand (a newline byte never occurs inside a multi-byte UTF-8 sequence, so the split is exact).
 */
export function splitBody(body: Buffer, contentType: string): BodyItem[] | { refused: BodyRefusal } {
  const ndjson = NDJSON_TYPES.some((t) => contentType.includes(t));
  if (!ndjson) {
    const text = decodeUtf8(body);
    if (text === undefined) {
      const { raw, encoding, parsed } = invalidUtf8Item(body, 'the body');
      return { refused: { reason: 'invalid_utf8', detail: parsed.ok ? '' : parsed.detail, raw, encoding } };
    }
    const whole = parseJson(text);
    if (whole.ok) {
      const values: unknown[] = Array.isArray(whole.value) ? whole.value : [whole.value];
      return values.map((value) => ({ raw: rawOf(value), encoding: 'utf8', parsed: { ok: true, value } }));
    }
    if (!text.includes('\n')) {
      return { refused: { reason: 'invalid_json', detail: whole.detail, raw: text, encoding: 'utf8' } };
    }
  }
  const items: BodyItem[] = [];
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x0a, start);
    if (end === -1) end = body.length;
    const line = body.subarray(start, end);
    start = end + 1;
    const text = decodeUtf8(line);
    if (text === undefined) items.push(invalidUtf8Item(line, 'the line'));
    else if (text.trim() !== '') items.push(lineItem(text.trim()));
  }
  return items;
}

/** normalizeEvent, with a payload that breaks normalization itself (e.g. nested too deeply) as a reject. */
function normalizeSafely(value: unknown, ctx: InputContext): ReturnType<typeof normalizeEvent> {
  try {
    return normalizeEvent(value, ctx);
  } catch (err) {
    return {
      ok: false,
      reason: 'invalid_event',
      detail: `payload cannot be normalized: ${(err as Error).message}`,
    };
  }
}

/** The record an item becomes: its event, or its reject keyed by `rejectKey`. */
export function itemRecord(
  item: BodyItem,
  ctx: InputContext,
  input: RecordInput,
  rejectKey: string,
): WriteRecord {
  const normalized = item.parsed.ok ? normalizeSafely(item.parsed.value, ctx) : item.parsed;
  if (normalized.ok) return { kind: 'event', input, event: normalized.value };
  return {
    kind: 'reject',
    input,
    reject: makeReject(item.raw, { origin: input.origin }, normalized.reason, normalized.detail, rejectKey, {
      encoding: item.encoding,
      inputTimeMillis: ctx.defaultTimeMillis,
    }),
  };
}
