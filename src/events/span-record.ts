/**
 * A span as Chronicle stores, serves and exports it: plain JSON (so it can sit in a jsonb column and be
 * returned by the API unchanged), with OTLP's numbering and units. Built by the events → spans mapping
 * and by the OTLP receiver (spans forwarded unchanged); turned into a ReadableSpan only at export.
 */
export interface SpanRecord {
  /** 32 lower-case hex digits. */
  traceId: string;
  /** 16 lower-case hex digits. */
  spanId: string;
  /** 16 lower-case hex digits, or null for a root span. */
  parentSpanId: string | null;
  /** W3C trace state and trace flags of a span received over OTLP (kept so it is forwarded as sent). */
  traceState?: string;
  flags?: number;
  name: string;
  /** OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** Nanoseconds since the Unix epoch, as a decimal string (int64 does not fit a JS number). */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Attributes;
  events: SpanEventRecord[];
  links: SpanLinkRecord[];
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error; message only with error. */
  status: { code: number; message?: string };
  /** Attributes of the resource that produced the span (service.name, …). */
  resource: Attributes;
  /** The instrumentation scope. */
  scope: { name: string; version?: string };
}

export interface SpanEventRecord {
  name: string;
  timeUnixNano: string;
  attributes: Attributes;
}

export interface SpanLinkRecord {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

/**
 * Attribute values as OTLP AnyValue allows them, in JSON: string, number, boolean, arrays of values,
 * and nested maps (kvlist). Bytes are carried as base64 strings.
 */
export type AttributeValue =
  string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export type Attributes = Record<string, AttributeValue>;
