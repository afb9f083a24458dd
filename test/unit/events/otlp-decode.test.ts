import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import {
  OtlpDecodeError,
  decodeJsonRequest,
  decodeProtobufRequest,
  decodeRequest,
  encodeExportResponse,
  encodeRpcStatus,
} from '../../../src/events/otlp/decode.js';
import type { SpanRecord } from '../../../src/events/span-record.js';
import {
  DEFAULT_SCOPE,
  SpanKind,
  SpanStatusCode,
  at,
  nanos,
  readableSpan,
  spanIdOf,
  traceIdOf,
} from '../../support/otlp-spans.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const ROOT = '00f067aa0ba902b7';
const CHILD = '53995c3f42cd8ad8';

const RESOURCE_A = resourceFromAttributes({
  'service.name': 'dispatcher',
  'service.version': '2.0.1',
  'host.cores': 8,
});
const RESOURCE_B = resourceFromAttributes({ 'service.name': 'agent-scout' });

/** Attributes of every AnyValue type, as an SDK (or a caller bypassing its types) hands them over. */
const EVERY_TYPE = {
  text: 'hello',
  empty: '',
  yes: true,
  no: false,
  zero: 0,
  count: 42,
  negative: -42,
  big: 2 ** 40,
  ratio: 1.5,
  negativeRatio: -0.25,
  words: ['a', 'b', ''],
  numbers: [1, 2.5, -3],
  flags: [true, false],
  nested: { inner: 'x', depth: { level: 2, list: [1, 'two'] } },
  blob: new Uint8Array([0, 1, 2, 250, 255]),
};

/** EVERY_TYPE as a SpanRecord holds it: plain JSON, bytes as base64. */
const EVERY_TYPE_DECODED = {
  ...EVERY_TYPE,
  blob: Buffer.from([0, 1, 2, 250, 255]).toString('base64'),
};

/** A small trace over two resources and three scopes with every field set somewhere. */
function sampleSpans(): { spans: ReadableSpan[]; expected: SpanRecord[] } {
  const scopeB = { name: 'other-lib' };
  const spans = [
    readableSpan({
      traceId: TRACE,
      spanId: ROOT,
      name: 'dispatch task-7',
      kind: SpanKind.SERVER,
      start: at(0, 123_456_789),
      end: at(2, 987_654_321),
      attributes: EVERY_TYPE,
      events: [
        { name: 'queued', time: at(0, 500_000_001), attributes: { depth: 3, queue: 'high' } },
        { name: 'bare', time: at(1, 7) },
      ],
      links: [
        {
          context: { traceId: traceIdOf(9), spanId: spanIdOf(9), traceFlags: 1 },
          attributes: { why: 'retry' },
        },
        { context: { traceId: traceIdOf(10), spanId: spanIdOf(10), traceFlags: 0 } },
      ],
      status: { code: SpanStatusCode.ERROR, message: 'agent crashed' },
      resource: RESOURCE_A,
    }),
    readableSpan({
      traceId: TRACE,
      spanId: CHILD,
      parentSpanId: ROOT,
      name: 'call agent',
      kind: SpanKind.CLIENT,
      start: at(1, 1),
      end: at(1, 1),
      status: { code: SpanStatusCode.OK },
      resource: RESOURCE_A,
    }),
    readableSpan({
      traceId: TRACE,
      spanId: spanIdOf(3),
      parentSpanId: CHILD,
      kind: SpanKind.PRODUCER,
      resource: RESOURCE_A,
      scope: scopeB,
    }),
    readableSpan({
      traceId: traceIdOf(2),
      spanId: spanIdOf(4),
      kind: SpanKind.CONSUMER,
      resource: RESOURCE_B,
    }),
    readableSpan({
      traceId: traceIdOf(2),
      spanId: spanIdOf(5),
      kind: SpanKind.INTERNAL,
      resource: RESOURCE_B,
    }),
  ];
  const resourceA = { 'service.name': 'dispatcher', 'service.version': '2.0.1', 'host.cores': 8 };
  const resourceB = { 'service.name': 'agent-scout' };
  const base = {
    parentSpanId: null,
    name: 'test-span',
    startTimeUnixNano: nanos(at(0)),
    endTimeUnixNano: nanos(at(1)),
    attributes: {},
    events: [],
    links: [],
    status: { code: 0 },
    scope: DEFAULT_SCOPE,
    // Sampled, with the "is the parent remote" bit known (false): the SDK's flags, kept for forwarding.
    flags: 0x101,
  };
  const expected: SpanRecord[] = [
    {
      ...base,
      traceId: TRACE,
      spanId: ROOT,
      name: 'dispatch task-7',
      kind: 2,
      startTimeUnixNano: '1772366400123456789',
      endTimeUnixNano: '1772366402987654321',
      attributes: EVERY_TYPE_DECODED,
      events: [
        { name: 'queued', timeUnixNano: '1772366400500000001', attributes: { depth: 3, queue: 'high' } },
        { name: 'bare', timeUnixNano: '1772366401000000007', attributes: {} },
      ],
      links: [
        { traceId: traceIdOf(9), spanId: spanIdOf(9), attributes: { why: 'retry' } },
        { traceId: traceIdOf(10), spanId: spanIdOf(10), attributes: {} },
      ],
      status: { code: 2, message: 'agent crashed' },
      resource: resourceA,
    },
    {
      ...base,
      traceId: TRACE,
      spanId: CHILD,
      parentSpanId: ROOT,
      name: 'call agent',
      kind: 3,
      startTimeUnixNano: '1772366401000000001',
      endTimeUnixNano: '1772366401000000001',
      status: { code: 1 },
      resource: resourceA,
    },
    {
      ...base,
      traceId: TRACE,
      spanId: spanIdOf(3),
      parentSpanId: CHILD,
      kind: 4,
      resource: resourceA,
      scope: scopeB,
    },
    { ...base, traceId: traceIdOf(2), spanId: spanIdOf(4), kind: 5, resource: resourceB },
    { ...base, traceId: traceIdOf(2), spanId: spanIdOf(5), kind: 1, resource: resourceB },
  ];
  return { spans, expected };
}

function protobufOf(spans: ReadableSpan[]): Uint8Array {
  return ProtobufTraceSerializer.serializeRequest(spans)!;
}

function jsonOf(spans: ReadableSpan[]): Uint8Array {
  return JsonTraceSerializer.serializeRequest(spans)!;
}

/** A minimal valid OTLP/JSON span, to change one field at a time. */
function jsonSpan(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    traceId: TRACE,
    spanId: ROOT,
    name: 'op',
    kind: 1,
    startTimeUnixNano: '1772366400000000000',
    endTimeUnixNano: '1772366401000000000',
    ...overrides,
  };
}

function jsonRequest(spans: unknown[], resourceAttributes: unknown[] = []): string {
  return JSON.stringify({
    resourceSpans: [
      { resource: { attributes: resourceAttributes }, scopeSpans: [{ scope: { name: 's' }, spans }] },
    ],
  });
}

describe('otlp decode - official serializer output', () => {
  it('protobuf - every field round-trips (ids, parent, kind, times to the nanosecond, status, attributes, events, links, resource, scope)', () => {
    const { spans, expected } = sampleSpans();

    const decoded = decodeProtobufRequest(protobufOf(spans));

    expect(decoded.rejected).toEqual([]);
    expect(decoded.spans).toEqual(expected);
  });

  it('JSON - every field round-trips the same way', () => {
    const { spans, expected } = sampleSpans();

    const decoded = decodeJsonRequest(jsonOf(spans));

    expect(decoded.rejected).toEqual([]);
    expect(decoded.spans).toEqual(expected);
  });

  it('protobuf and JSON of the same spans decode to the same records', () => {
    const { spans } = sampleSpans();

    expect(decodeRequest(protobufOf(spans), 'protobuf')).toEqual(decodeRequest(jsonOf(spans), 'json'));
  });

  it('API span kinds are numbered as OTLP numbers them (API + 1)', () => {
    const kinds = [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER];
    const spans = kinds.map((kind, i) => readableSpan({ traceId: TRACE, spanId: spanIdOf(i + 1), kind }));

    expect(decodeProtobufRequest(protobufOf(spans)).spans.map((s) => s.kind)).toEqual([1, 2, 3, 4, 5]);
    expect(decodeJsonRequest(jsonOf(spans)).spans.map((s) => s.kind)).toEqual([1, 2, 3, 4, 5]);
  });

  it('times far from now keep every nanosecond (beyond 2^53)', () => {
    const span = readableSpan({
      traceId: TRACE,
      spanId: ROOT,
      start: [4_000_000_000, 1],
      end: [4_000_000_001, 999_999_999],
    });

    for (const decoded of [decodeProtobufRequest(protobufOf([span])), decodeJsonRequest(jsonOf([span]))]) {
      expect(decoded.spans[0]).toMatchObject({
        startTimeUnixNano: '4000000000000000001',
        endTimeUnixNano: '4000000001999999999',
      });
    }
  });

  it('an empty body and a request without spans decode to nothing', () => {
    expect(decodeProtobufRequest(new Uint8Array())).toEqual({ spans: [], rejected: [] });
    expect(decodeProtobufRequest(protobufOf([]))).toEqual({ spans: [], rejected: [] });
    expect(decodeJsonRequest('{}')).toEqual({ spans: [], rejected: [] });
    expect(decodeJsonRequest(jsonOf([]))).toEqual({ spans: [], rejected: [] });
  });

  it('protobuf - unknown fields are skipped, at the top and inside a span', () => {
    const body = protobufOf([readableSpan({ traceId: TRACE, spanId: ROOT })]);
    // Field 99, varint 1 (tag (99 << 3) | 0 = 792 = 0x98 0x06), appended to the request.
    const withUnknown = Buffer.concat([Buffer.from(body), Buffer.from([0x98, 0x06, 0x01])]);

    expect(decodeProtobufRequest(withUnknown).spans).toHaveLength(1);
  });
});

describe('otlp decode - OTLP/JSON mapping', () => {
  it('ids are hex (upper case accepted), not base64', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([
        jsonSpan({ traceId: TRACE.toUpperCase(), spanId: ROOT.toUpperCase(), parentSpanId: CHILD }),
      ]),
    );

    expect(decoded.spans[0]).toMatchObject({ traceId: TRACE, spanId: ROOT, parentSpanId: CHILD });
  });

  it('64-bit integers as decimal strings or as numbers', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([
        jsonSpan({
          startTimeUnixNano: 1_772_366_400_000_000_000,
          endTimeUnixNano: '1772366400000000999',
          attributes: [
            { key: 'asString', value: { intValue: '-9007199254740991' } },
            { key: 'asNumber', value: { intValue: 17 } },
            { key: 'doubleAsString', value: { doubleValue: '2.5' } },
          ],
          // A number past 2^53 arrives rounded, as JSON.parse reads it.
          events: [{ name: 'e', timeUnixNano: Number('1772366400000000500') }],
        }),
      ]),
    );

    expect(decoded.spans[0]).toMatchObject({
      startTimeUnixNano: '1772366400000000000',
      endTimeUnixNano: '1772366400000000999',
      attributes: { asString: -9007199254740991, asNumber: 17, doubleAsString: 2.5 },
      events: [{ name: 'e', timeUnixNano: '1772366400000000512', attributes: {} }],
    });
  });

  it('enums as integers, and as their names', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([
        jsonSpan({ spanId: spanIdOf(1), kind: 3, status: { code: 2, message: 'boom' } }),
        jsonSpan({ spanId: spanIdOf(2), kind: 'SPAN_KIND_CONSUMER', status: { code: 'STATUS_CODE_OK' } }),
        jsonSpan({ spanId: spanIdOf(3), kind: undefined, status: undefined }),
      ]),
    );

    expect(decoded.spans.map((s) => [s.kind, s.status])).toEqual([
      [3, { code: 2, message: 'boom' }],
      [5, { code: 1 }],
      [0, { code: 0 }],
    ]);
  });

  it('unknown fields are ignored at every level, and null means not set', () => {
    const body = JSON.stringify({
      futureField: { anything: [1, 2] },
      resourceSpans: [
        {
          schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
          entityRefs: [{ type: 'service' }],
          resource: {
            attributes: [{ key: 'service.name', value: { stringValue: 'x' } }],
            droppedAttributesCount: 0,
          },
          scopeSpans: [
            {
              scope: { name: 'lib', version: null, attributes: [{ key: 'k', value: { stringValue: 'v' } }] },
              schemaUrl: '',
              spans: [
                jsonSpan({
                  traceState: 'vendor=1',
                  flags: 257,
                  droppedAttributesCount: 3,
                  droppedEventsCount: 1,
                  droppedLinksCount: 0,
                  parentSpanId: null,
                  somethingNew: true,
                  attributes: [
                    { key: 'a', value: { stringValue: 'b', unknownValue: 1 } },
                    { key: 'empty', value: {} },
                  ],
                }),
              ],
            },
          ],
        },
      ],
    });

    const decoded = decodeJsonRequest(body);

    expect(decoded.rejected).toEqual([]);
    expect(decoded.spans).toEqual([
      {
        traceId: TRACE,
        spanId: ROOT,
        parentSpanId: null,
        traceState: 'vendor=1',
        flags: 257,
        name: 'op',
        kind: 1,
        startTimeUnixNano: '1772366400000000000',
        endTimeUnixNano: '1772366401000000000',
        attributes: { a: 'b', empty: null },
        events: [],
        links: [],
        status: { code: 0 },
        resource: { 'service.name': 'x' },
        scope: { name: 'lib' },
      },
    ]);
  });

  it('doubles that JSON cannot hold, bytes in URL-safe base64, and an empty parent id', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([
        jsonSpan({
          parentSpanId: '',
          attributes: [
            { key: 'nan', value: { doubleValue: 'NaN' } },
            { key: 'inf', value: { doubleValue: '-Infinity' } },
            { key: 'bytes', value: { bytesValue: '-_8' } },
          ],
        }),
      ]),
    );

    expect(decoded.spans[0]).toMatchObject({
      parentSpanId: null,
      attributes: { nan: 'NaN', inf: '-Infinity', bytes: '+/8=' },
    });
  });

  it('a key such as __proto__ stays an ordinary attribute', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([jsonSpan({ attributes: [{ key: '__proto__', value: { stringValue: 'x' } }] })]),
    );

    const attributes = decoded.spans[0]!.attributes;
    expect(Object.getPrototypeOf(attributes)).toBe(Object.prototype);
    expect(Object.keys(attributes)).toEqual(['__proto__']);
  });
});

describe('otlp decode - span validation', () => {
  const bad: { name: string; spec: Parameters<typeof readableSpan>[0]; reason: string }[] = [
    { name: 'zero trace id', spec: { traceId: '0'.repeat(32), spanId: ROOT }, reason: 'invalid_trace_id' },
    { name: 'short trace id', spec: { traceId: 'abcd', spanId: ROOT }, reason: 'invalid_trace_id' },
    { name: 'long trace id', spec: { traceId: `${TRACE}00`, spanId: ROOT }, reason: 'invalid_trace_id' },
    { name: 'zero span id', spec: { traceId: TRACE, spanId: '0'.repeat(16) }, reason: 'invalid_span_id' },
    { name: 'short span id', spec: { traceId: TRACE, spanId: 'ab' }, reason: 'invalid_span_id' },
    {
      name: 'short parent id',
      spec: { traceId: TRACE, spanId: ROOT, parentSpanId: 'abcd' },
      reason: 'invalid_parent_span_id',
    },
    {
      name: 'end before start',
      spec: { traceId: TRACE, spanId: ROOT, start: at(5), end: at(4, 999_999_999) },
      reason: 'invalid_span_time',
    },
    {
      name: 'start not set',
      spec: { traceId: TRACE, spanId: ROOT, start: [0, 0] },
      reason: 'invalid_span_time',
    },
    {
      name: 'end not set',
      spec: { traceId: TRACE, spanId: ROOT, start: [0, 0], end: [0, 0] },
      reason: 'invalid_span_time',
    },
    {
      name: 'bad link id',
      spec: {
        traceId: TRACE,
        spanId: ROOT,
        links: [{ context: { traceId: 'ab', spanId: ROOT, traceFlags: 0 } }],
      },
      reason: 'invalid_link',
    },
  ];

  for (const format of ['protobuf', 'json'] as const) {
    it(`${format} - each bad span is rejected with its reason and the good ones around it are kept`, () => {
      const good = (n: number) => readableSpan({ traceId: traceIdOf(n), spanId: spanIdOf(n) });
      const spans = [good(1), ...bad.flatMap((b, i) => [readableSpan(b.spec), good(i + 2)])];
      const body = format === 'protobuf' ? protobufOf(spans) : jsonOf(spans);

      const decoded = decodeRequest(body, format);

      expect(decoded.spans.map((s) => s.spanId)).toEqual([
        spanIdOf(1),
        ...bad.map((_, i) => spanIdOf(i + 2)),
      ]);
      expect(decoded.rejected.map((r) => r.reason)).toEqual(bad.map((b) => b.reason));
      for (const r of decoded.rejected) expect(r.detail).toMatch(/\S/);
      // The rejected span is kept as received, for the reject record.
      expect(decoded.rejected[1]!.span).toMatchObject({ traceId: 'abcd', spanId: ROOT, name: 'test-span' });
    });
  }

  it('equal start and end times are valid', () => {
    const span = readableSpan({ traceId: TRACE, spanId: ROOT, start: at(3, 5), end: at(3, 5) });

    expect(decodeProtobufRequest(protobufOf([span])).rejected).toEqual([]);
  });

  it('JSON - an id that is not hex is rejected as the span, not the request', () => {
    const decoded = decodeJsonRequest(
      jsonRequest([
        jsonSpan({ spanId: spanIdOf(1) }),
        jsonSpan({ spanId: 'not-hex-at-all!!' }),
        jsonSpan({ traceId: 'T'.repeat(32) }),
      ]),
    );

    expect(decoded.spans).toHaveLength(1);
    expect(decoded.rejected.map((r) => r.reason)).toEqual(['invalid_span_id', 'invalid_trace_id']);
  });
});

describe('otlp decode - undecodable bodies', () => {
  const protobufCases: [string, Uint8Array][] = [
    ['random bytes', Buffer.from('this is not protobuf, it is text')],
    [
      'a truncated message',
      Buffer.from(protobufOf([readableSpan({ traceId: TRACE, spanId: ROOT })])).subarray(0, 40),
    ],
    ['a wrong wire type for resource_spans', Buffer.from([0x08, 0x01])],
  ];
  for (const [name, body] of protobufCases) {
    it(`protobuf - ${name} is an OtlpDecodeError`, () => {
      expect(() => decodeProtobufRequest(body)).toThrow(OtlpDecodeError);
    });
  }

  it('protobuf - values nested past the recursion limit are an OtlpDecodeError', () => {
    let nested: unknown = 'leaf';
    for (let i = 0; i < 60; i++) nested = { level: nested };
    const span = readableSpan({ traceId: TRACE, spanId: ROOT, attributes: { deep: nested } });

    expect(() => decodeProtobufRequest(protobufOf([span]))).toThrow(OtlpDecodeError);
  });

  const jsonCases: [string, string][] = [
    ['text that is not JSON', '{"resourceSpans": ['],
    ['a JSON array', '[]'],
    ['a JSON string', '"spans"'],
    ['resourceSpans that is not an array', '{"resourceSpans": 5}'],
    ['a span that is not an object', jsonRequest(['span'])],
    ['a time that is not an integer', jsonRequest([jsonSpan({ startTimeUnixNano: 'soon' })])],
    ['a negative time', jsonRequest([jsonSpan({ startTimeUnixNano: -1 })])],
    ['a time past uint64', jsonRequest([jsonSpan({ endTimeUnixNano: '18446744073709551616' })])],
    [
      'a fractional intValue',
      jsonRequest([jsonSpan({ attributes: [{ key: 'a', value: { intValue: 1.5 } }] })]),
    ],
    ['attributes that are an object', jsonRequest([jsonSpan({ attributes: { a: 'b' } })])],
    [
      'a boolValue that is a string',
      jsonRequest([jsonSpan({ attributes: [{ key: 'a', value: { boolValue: 'yes' } }] })]),
    ],
    ['an id that is a number', jsonRequest([jsonSpan({ traceId: 12 })])],
    ['an unknown enum name', jsonRequest([jsonSpan({ kind: 'SPAN_KIND_SIDEWAYS' })])],
  ];
  for (const [name, body] of jsonCases) {
    it(`JSON - ${name} is an OtlpDecodeError naming where`, () => {
      expect(() => decodeJsonRequest(body)).toThrow(OtlpDecodeError);
    });
  }

  it('JSON - the error names the path of the bad field', () => {
    expect(() => decodeJsonRequest(jsonRequest([jsonSpan({ startTimeUnixNano: 'soon' })]))).toThrow(
      /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.startTimeUnixNano/,
    );
  });

  it('JSON - values nested deeper than 32 levels are an OtlpDecodeError', () => {
    let value: unknown = { stringValue: 'leaf' };
    for (let i = 0; i < 40; i++) value = { arrayValue: { values: [value] } };

    expect(() =>
      decodeJsonRequest(jsonRequest([jsonSpan({ attributes: [{ key: 'deep', value }] })])),
    ).toThrow(/nested deeper than 32 levels/);
  });
});

describe('otlp decode - answers', () => {
  it('protobuf ExportTraceServiceResponse - read by the official deserializer', () => {
    expect(ProtobufTraceSerializer.deserializeResponse(encodeExportResponse(undefined, 'protobuf'))).toEqual(
      {},
    );
    expect(encodeExportResponse(undefined, 'protobuf')).toHaveLength(0);

    const partial = encodeExportResponse({ rejectedSpans: 3, errorMessage: '3 spans rejected' }, 'protobuf');

    expect(ProtobufTraceSerializer.deserializeResponse(partial)).toEqual({
      partialSuccess: { rejectedSpans: 3, errorMessage: '3 spans rejected' },
    });
  });

  it('JSON ExportTraceServiceResponse - empty object, or partialSuccess with rejectedSpans as an int64 string', () => {
    expect(JSON.parse(encodeExportResponse(undefined, 'json').toString())).toEqual({});
    expect(
      JSON.parse(encodeExportResponse({ rejectedSpans: 2, errorMessage: 'why' }, 'json').toString()),
    ).toEqual({
      partialSuccess: { rejectedSpans: '2', errorMessage: 'why' },
    });
  });

  it('google.rpc.Status - code is field 1 (varint), message field 2 (string)', () => {
    const bytes = encodeRpcStatus({ code: 3, message: 'bad' }, 'protobuf');

    expect([...bytes]).toEqual([0x08, 0x03, 0x12, 0x03, ...Buffer.from('bad')]);
    expect(JSON.parse(encodeRpcStatus({ code: 14, message: 'later' }, 'json').toString())).toEqual({
      code: 14,
      message: 'later',
    });
  });
});
