import type { Origin } from '../../pipeline/contracts.js';
import type { CanonicalEvent, DlqEntry, Reject } from '../../events/schema.js';
import type { SpanRecord } from '../../spans/span-record.js';

/** Where a record came from: enough to write it as a reject if the database refuses it. */
export interface RecordInput {
  origin: Origin;
  subject: string | null;
  /** Stream and sequence (`nats:TASK_EVENTS:42`) for redeliverable input; null otherwise. */
  key: string | null;
}

/** One unit the store writes: an event, a dead-letter entry (with its trace event), or a reject. */
export type WriteRecord =
  | {
      kind: 'event';
      input: RecordInput;
      event: CanonicalEvent;
      /** A span received over OTLP, stored with its event and exported unchanged (ids and all). */
      forward?: SpanRecord;
    }
  | { kind: 'dlq'; input: RecordInput; entry: DlqEntry; event: CanonicalEvent | null }
  | { kind: 'reject'; input: RecordInput; reject: Reject };

/** How one record was settled by a committed write. */
export type RecordResult =
  { status: 'stored' } | { status: 'duplicate' } | { status: 'rejected'; reason: string; detail: string };
