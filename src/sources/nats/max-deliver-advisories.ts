import type { MsgHdrs } from 'nats';
import { parseJson } from '../../events/normalize.js';
import type { RecordInput } from '../../pipeline/records.js';
import {
  type PulledStream,
  type RawPayload,
  durableName,
  localSubject,
  rejectOffer,
  utf8Text,
} from './pulled-stream.js';

interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

/**
 * The stream that captures the server's max_deliver advisories for the durables of `watched`: each
 * becomes a reject `max_deliver` carrying the message the server gave up on (read back from its
 * stream), so that no input is lost silently. Created when missing with one subject per watched
 * durable, and never altered: each source keeps its own.
 */
export function maxDeliveriesAdvisories(spec: {
  name: string;
  label: string;
  namespace: string;
  /** Names of the streams (with the namespace) whose durables are watched. */
  watched: readonly string[];
  /** The given-up message's payload as text; UTF-8 when absent. */
  payloadText?: (data: Uint8Array, headers: MsgHdrs | undefined) => RawPayload;
}): PulledStream {
  const textOf = spec.payloadText ?? utf8Text;
  return {
    name: spec.name,
    label: spec.label,
    subjects: spec.watched.map((s) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s}.${durableName(s)}`),
    maxAgeMillis: 7 * 24 * 3600 * 1000,
    failureReason: 'invalid_event',
    tooManyReason: 'too_many_records',
    async toOffers(msg, jsm) {
      const raw = utf8Text(msg.data).text;
      const input: RecordInput = {
        origin: 'nats',
        subject: msg.subject,
        key: `nats:${spec.name}:${msg.info.streamSequence}`,
      };
      const parsed = parseJson(raw);
      const advisory = (parsed.ok ? parsed.value : {}) as Partial<MaxDeliveriesAdvisory>;
      if (typeof advisory.stream !== 'string' || typeof advisory.stream_seq !== 'number') {
        return [rejectOffer(input, raw, 'invalid_advisory', 'advisory without stream and stream_seq')];
      }
      const key = `max_deliver:${advisory.stream}:${advisory.stream_seq}`;
      const detail = `delivered ${advisory.deliveries ?? '?'} times by ${advisory.consumer ?? '?'} without an ack; the server will not deliver it again (it may still have been stored if only its acks were lost)`;
      try {
        const stored = await jsm.streams.getMessage(advisory.stream, { seq: advisory.stream_seq });
        const subject = localSubject(spec.namespace, stored.subject);
        const payload = textOf(stored.data, stored.header);
        // The message's own time is kept: a replay gives an event without a timestamp the same one.
        const inputTimeMillis = stored.time.getTime();
        return [rejectOffer({ ...input, subject }, payload, 'max_deliver', detail, key, { inputTimeMillis })];
      } catch (err) {
        const gone = `${detail}; the message is no longer in stream ${advisory.stream} (${(err as Error).message})`;
        return [rejectOffer(input, raw, 'max_deliver', gone, key)];
      }
    },
  };
}
