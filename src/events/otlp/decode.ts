import { isUtf8 } from 'node:buffer';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type {
  AttributeValue,
  Attributes,
  SpanEventRecord,
  SpanLinkRecord,
  SpanRecord,
} from '../span-record.js';

/** The two OTLP/HTTP encodings: binary protobuf (application/x-protobuf) and OTLP/JSON (application/json). */
export type OtlpFormat = 'protobuf' | 'json';

/**
 * The body is not an ExportTraceServiceRequest in the format its Content-Type names: answered with 400.
 * `reason` is the reject code: `invalid_utf8` when the body (OTLP/JSON) or a string in it (protobuf) is
 * not UTF-8, `invalid_otlp` otherwise.
 */
export class OtlpDecodeError extends Error {
  override readonly name = 'OtlpDecodeError';
  constructor(
    message: string,
    options?: ErrorOptions,
    readonly reason: 'invalid_otlp' | 'invalid_utf8' = 'invalid_otlp',
  ) {
    super(message, options);
  }
}

/** A protobuf string field that is not UTF-8 (thrown by StrictReader). */
class InvalidUtf8Error extends Error {
  override readonly name = 'InvalidUtf8Error';
}

/**
 * A protobuf reader that refuses a string field that is not UTF-8, where protobufjs would decode it
 * with replacement characters (so two different byte strings could become the same trace id). Nested
 * messages are decoded with the same reader, so every string of the request is checked.
 */
class StrictReader extends protobuf.BufferReader {
  override string(): string {
    const length = this.uint32();
    const end = Math.min(this.pos + length, this.len);
    const bytes = (this.buf as Buffer).subarray(this.pos, end);
    if (!isUtf8(bytes)) throw new InvalidUtf8Error(`a string field at byte ${this.pos} is not valid UTF-8`);
    this.pos = end;
    return bytes.toString('utf8');
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when `text` parses as JSON. */
function parseJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A span that decoded but breaks an OTLP rule; it is recorded as a reject and counted in partial_success. */
export interface RejectedSpan {
  /** The span as received (ids as sent, so possibly not 32/16 hex digits). */
  span: SpanRecord;
  /** Short stable code, e.g. `invalid_span_id`. */
  reason: string;
  detail: string;
}

/** What one ExportTraceServiceRequest holds, in the order received. */
export interface DecodedRequest {
  /** Spans that pass validation. */
  spans: SpanRecord[];
  rejected: RejectedSpan[];
}

/** The answer to a request that was taken: some spans rejected, with a summary of why. */
export interface PartialSuccess {
  rejectedSpans: number;
  errorMessage: string;
}

/** A google.rpc.Status: the body of every OTLP/HTTP error answer. */
export interface RpcStatus {
  /** A google.rpc.Code value: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, ... */
  code: number;
  message: string;
}

// The entry file sits three levels up from both src/sources/otlp/ (tsx, vitest) and dist/sources/otlp/
// (tsc with rootDir src), so one relative URL serves both.
const REQUEST_PROTO = new URL('../../../proto/otlp-trace.proto', import.meta.url);
const STATUS_PROTO = new URL('../../../proto/google/rpc/status.proto', import.meta.url);

/** Loads the messages once, at import: a missing or broken .proto stops Chronicle at startup. */
function loadTypes() {
  const root = new protobuf.Root();
  // Imports are named from the proto directory (as with protoc -I proto), not from the importing file.
  root.resolvePath = (_origin, target) => fileURLToPath(new URL(target, REQUEST_PROTO));
  root.loadSync([fileURLToPath(REQUEST_PROTO), fileURLToPath(STATUS_PROTO)]);
  return {
    request: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    response: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
    status: root.lookupType('google.rpc.Status'),
  };
}

const types = loadTypes();

/**
 * Decodes a binary protobuf ExportTraceServiceRequest. Unknown fields are skipped.
 * @throws OtlpDecodeError when the bytes are not such a message.
 */
export function decodeProtobufRequest(body: Uint8Array): DecodedRequest {
  let object: Record<string, unknown>;
  try {
    // The same shape as OTLP/JSON, except that ids come as base64 like every other bytes field.
    const reader = new StrictReader(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    object = types.request.toObject(types.request.decode(reader), {
      longs: String,
      enums: Number,
      bytes: String,
    });
  } catch (err) {
    if (err instanceof InvalidUtf8Error) {
      throw new OtlpDecodeError(
        `body holds a string that is not UTF-8: ${err.message}`,
        { cause: err },
        'invalid_utf8',
      );
    }
    throw new OtlpDecodeError(`body is not a protobuf ExportTraceServiceRequest: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return convertRequest(object, 'base64');
}

/**
 * Decodes an OTLP/JSON ExportTraceServiceRequest: lowerCamelCase field names, trace and span ids as
 * hex strings, enums as integers (names are taken too), 64-bit integers as decimal strings or numbers,
 * bytes as base64. Unknown fields are ignored; a known field of the wrong type is an error.
 * @throws OtlpDecodeError when the body is not JSON or not such a message.
 */
export function decodeJsonRequest(body: string | Uint8Array): DecodedRequest {
  let text: string;
  try {
    text = typeof body === 'string' ? body : strictUtf8.decode(body);
  } catch (err) {
    // JSON with bytes that are not UTF-8 in it is invalid_utf8; bytes that are no JSON at all (protobuf
    // sent as JSON) stay invalid_otlp, as "not JSON" below.
    text = Buffer.from(body as Uint8Array).toString('utf8');
    if (parseJson(text)) throw new OtlpDecodeError('body is not valid UTF-8', { cause: err }, 'invalid_utf8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (err) {
    throw new OtlpDecodeError(`body is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(value))
    throw new OtlpDecodeError('body must be a JSON object (an ExportTraceServiceRequest)');
  return convertRequest(value, 'hex');
}

/** Decodes a request body in the given format. */
export function decodeRequest(body: Uint8Array, format: OtlpFormat): DecodedRequest {
  return format === 'protobuf' ? decodeProtobufRequest(body) : decodeJsonRequest(body);
}

/** An ExportTraceServiceResponse: empty when everything was accepted. */
export function encodeExportResponse(partialSuccess: PartialSuccess | undefined, format: OtlpFormat): Buffer {
  if (format === 'json') {
    // int64 is a decimal string in the protobuf JSON mapping.
    const body =
      partialSuccess === undefined
        ? {}
        : {
            partialSuccess: {
              rejectedSpans: String(partialSuccess.rejectedSpans),
              errorMessage: partialSuccess.errorMessage,
            },
          };
    return Buffer.from(JSON.stringify(body));
  }
  const message = types.response.fromObject(partialSuccess === undefined ? {} : { partialSuccess });
  return Buffer.from(types.response.encode(message).finish());
}

/** A google.rpc.Status, the body of an error answer. */
export function encodeRpcStatus(status: RpcStatus, format: OtlpFormat): Buffer {
  if (format === 'json') return Buffer.from(JSON.stringify({ code: status.code, message: status.message }));
  return Buffer.from(types.status.encode(types.status.fromObject(status)).finish());
}

type IdEncoding = 'hex' | 'base64';

const MAX_VALUE_DEPTH = 32;
const MAX_UINT64 = 2n ** 64n - 1n;
const SPAN_KINDS = [
  'SPAN_KIND_UNSPECIFIED',
  'SPAN_KIND_INTERNAL',
  'SPAN_KIND_SERVER',
  'SPAN_KIND_CLIENT',
  'SPAN_KIND_PRODUCER',
  'SPAN_KIND_CONSUMER',
];
const STATUS_CODES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function fail(path: string, expected: string, value: unknown): never {
  const got = Array.isArray(value)
    ? 'an array'
    : typeof value === 'string'
      ? JSON.stringify(value)
      : typeof value;
  throw new OtlpDecodeError(
    `${path}: expected ${expected}, got ${got.length > 70 ? `${got.slice(0, 70)}…` : got}`,
  );
}

/** A message field: absent and null both mean "not set". */
function message(value: unknown, path: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  return isObject(value) ? value : fail(path, 'an object', value);
}

function repeated(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : fail(path, 'an array', value);
}

function text(value: unknown, path: string): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : fail(path, 'a string', value);
}

/** fixed64 nanoseconds as a canonical decimal string; '0' when not set. */
function unsigned64(value: unknown, path: string): string {
  if (value === undefined || value === null) return '0';
  let n: bigint | undefined;
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) n = BigInt(value);
  else if (typeof value === 'number' && Number.isInteger(value) && value >= 0) n = BigInt(value);
  if (n === undefined || n > MAX_UINT64)
    return fail(path, 'an unsigned 64-bit integer (decimal string or number)', value);
  return n.toString();
}

/** int64, as a JS number (exact up to 2^53). */
function signed64(value: unknown, path: string): number {
  if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) return Number(value);
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  return fail(path, 'a 64-bit integer (decimal string or number)', value);
}

function enumeration(value: unknown, names: readonly string[], path: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && names.includes(value)) return names.indexOf(value);
  return fail(path, `an enum value (integer or ${names.join(', ')})`, value);
}

/** A double; NaN and the infinities (which JSON cannot hold) as the strings the JSON mapping uses. */
function double(value: unknown, path: string): number | string {
  let n: number | undefined;
  if (typeof value === 'number') n = value;
  else if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return value;
  else if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
    n = Number(value);
  if (n === undefined) return fail(path, 'a number', value);
  if (Number.isFinite(n)) return n;
  return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
}

/** A trace or span id as lower-case hex; an id that is not valid hex is kept as sent, for validation to refuse. */
function id(value: unknown, encoding: IdEncoding, path: string): string {
  const raw = text(value, path);
  if (encoding === 'base64') return Buffer.from(raw, 'base64').toString('hex');
  return raw.toLowerCase();
}

function anyValue(value: unknown, path: string, depth: number): AttributeValue {
  const v = message(value, path);
  if (v === undefined) return null;
  if (v.stringValue != null) return text(v.stringValue, `${path}.stringValue`);
  if (v.boolValue != null) {
    return typeof v.boolValue === 'boolean'
      ? v.boolValue
      : fail(`${path}.boolValue`, 'a boolean', v.boolValue);
  }
  if (v.intValue != null) return signed64(v.intValue, `${path}.intValue`);
  if (v.doubleValue != null) return double(v.doubleValue, `${path}.doubleValue`);
  if (v.arrayValue != null || v.kvlistValue != null) {
    if (depth >= MAX_VALUE_DEPTH) {
      throw new OtlpDecodeError(`${path}: values nested deeper than ${MAX_VALUE_DEPTH} levels`);
    }
    if (v.arrayValue != null) {
      const values = message(v.arrayValue, `${path}.arrayValue`)?.values;
      return repeated(values, `${path}.arrayValue.values`).map((item, i) =>
        anyValue(item, `${path}.arrayValue.values[${i}]`, depth + 1),
      );
    }
    const values = message(v.kvlistValue, `${path}.kvlistValue`)?.values;
    return attributes(values, `${path}.kvlistValue.values`, depth + 1);
  }
  if (v.bytesValue != null) {
    // Standard base64 whatever the sender used (URL-safe, unpadded).
    return Buffer.from(text(v.bytesValue, `${path}.bytesValue`), 'base64').toString('base64');
  }
  return null;
}

/** A repeated KeyValue as a plain object; with a repeated key the last value wins. */
function attributes(value: unknown, path: string, depth = 0): Attributes {
  // fromEntries defines own properties, so a key such as __proto__ stays an ordinary key.
  return Object.fromEntries(
    repeated(value, path).map((item, i) => {
      const kv = message(item, `${path}[${i}]`) ?? {};
      return [text(kv.key, `${path}[${i}].key`), anyValue(kv.value, `${path}[${i}].value`, depth)];
    }),
  );
}

function convertSpan(
  value: unknown,
  context: { resource: Attributes; scope: SpanRecord['scope'] },
  ids: IdEncoding,
  path: string,
): SpanRecord {
  const s = message(value, path) ?? {};
  const parent = id(s.parentSpanId, ids, `${path}.parentSpanId`);
  const status = message(s.status, `${path}.status`) ?? {};
  const statusMessage = text(status.message, `${path}.status.message`);
  const traceState = text(s.traceState, `${path}.traceState`);
  const flags = s.flags === undefined || s.flags === null ? 0 : Number(unsigned64(s.flags, `${path}.flags`));
  return {
    traceId: id(s.traceId, ids, `${path}.traceId`),
    spanId: id(s.spanId, ids, `${path}.spanId`),
    parentSpanId: parent === '' ? null : parent,
    ...(traceState === '' ? {} : { traceState }),
    ...(flags === 0 ? {} : { flags }),
    name: text(s.name, `${path}.name`),
    kind: enumeration(s.kind, SPAN_KINDS, `${path}.kind`),
    startTimeUnixNano: unsigned64(s.startTimeUnixNano, `${path}.startTimeUnixNano`),
    endTimeUnixNano: unsigned64(s.endTimeUnixNano, `${path}.endTimeUnixNano`),
    attributes: attributes(s.attributes, `${path}.attributes`),
    events: repeated(s.events, `${path}.events`).map((item, i): SpanEventRecord => {
      const p = `${path}.events[${i}]`;
      const e = message(item, p) ?? {};
      return {
        name: text(e.name, `${p}.name`),
        timeUnixNano: unsigned64(e.timeUnixNano, `${p}.timeUnixNano`),
        attributes: attributes(e.attributes, `${p}.attributes`),
      };
    }),
    links: repeated(s.links, `${path}.links`).map((item, i): SpanLinkRecord => {
      const p = `${path}.links[${i}]`;
      const l = message(item, p) ?? {};
      return {
        traceId: id(l.traceId, ids, `${p}.traceId`),
        spanId: id(l.spanId, ids, `${p}.spanId`),
        attributes: attributes(l.attributes, `${p}.attributes`),
      };
    }),
    status: {
      code: enumeration(status.code, STATUS_CODES, `${path}.status.code`),
      ...(statusMessage === '' ? {} : { message: statusMessage }),
    },
    resource: context.resource,
    scope: context.scope,
  };
}

function convertRequest(request: Record<string, unknown>, ids: IdEncoding): DecodedRequest {
  const out: DecodedRequest = { spans: [], rejected: [] };
  repeated(request.resourceSpans, 'resourceSpans').forEach((rsValue, i) => {
    const rsPath = `resourceSpans[${i}]`;
    const rs = message(rsValue, rsPath) ?? {};
    const resourcePath = `${rsPath}.resource`;
    const resource = attributes(message(rs.resource, resourcePath)?.attributes, `${resourcePath}.attributes`);
    repeated(rs.scopeSpans, `${rsPath}.scopeSpans`).forEach((ssValue, j) => {
      const ssPath = `${rsPath}.scopeSpans[${j}]`;
      const ss = message(ssValue, ssPath) ?? {};
      const scopeMessage = message(ss.scope, `${ssPath}.scope`) ?? {};
      const version = text(scopeMessage.version, `${ssPath}.scope.version`);
      const scope = {
        name: text(scopeMessage.name, `${ssPath}.scope.name`),
        ...(version === '' ? {} : { version }),
      };
      repeated(ss.spans, `${ssPath}.spans`).forEach((spanValue, k) => {
        const span = convertSpan(spanValue, { resource, scope }, ids, `${ssPath}.spans[${k}]`);
        const problem = validateSpan(span);
        if (problem === undefined) out.spans.push(span);
        else out.rejected.push({ span, ...problem });
      });
    });
  });
  return out;
}

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const ALL_ZERO = /^0+$/;

function shown(value: string): string {
  return value === '' ? 'nothing' : JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

/**
 * The OTLP rules a span must meet: a 16-byte non-zero trace id, an 8-byte non-zero span id, a parent
 * span id empty or 8 bytes, start and end times set with end ≥ start, and 16/8-byte ids in its links
 * (the export sends them on as they are).
 */
function validateSpan(span: SpanRecord): { reason: string; detail: string } | undefined {
  if (!TRACE_ID.test(span.traceId) || ALL_ZERO.test(span.traceId)) {
    const detail = `trace id must be 16 bytes (32 hex digits), not all zero; got ${shown(span.traceId)}`;
    return { reason: 'invalid_trace_id', detail };
  }
  if (!SPAN_ID.test(span.spanId) || ALL_ZERO.test(span.spanId)) {
    const detail = `span id must be 8 bytes (16 hex digits), not all zero; got ${shown(span.spanId)}`;
    return { reason: 'invalid_span_id', detail };
  }
  if (span.parentSpanId !== null && !SPAN_ID.test(span.parentSpanId)) {
    const detail = `parent span id must be empty or 8 bytes (16 hex digits); got ${shown(span.parentSpanId)}`;
    return { reason: 'invalid_parent_span_id', detail };
  }
  if (span.startTimeUnixNano === '0' || span.endTimeUnixNano === '0') {
    const which = span.startTimeUnixNano === '0' ? 'start' : 'end';
    return { reason: 'invalid_span_time', detail: `span ${which} time is not set` };
  }
  if (BigInt(span.endTimeUnixNano) < BigInt(span.startTimeUnixNano)) {
    const detail = `span ends (${span.endTimeUnixNano} ns) before it starts (${span.startTimeUnixNano} ns)`;
    return { reason: 'invalid_span_time', detail };
  }
  const link = span.links.findIndex((l) => !TRACE_ID.test(l.traceId) || !SPAN_ID.test(l.spanId));
  if (link >= 0) {
    const l = span.links[link]!;
    const detail = `link ${link} must have a 16-byte trace id and an 8-byte span id; got ${shown(l.traceId)} and ${shown(l.spanId)}`;
    return { reason: 'invalid_link', detail };
  }
  return undefined;
}
