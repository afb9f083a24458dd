import type { CanonicalEvent, DlqEntry, Reject } from '../events/schema.js';
import type { SpanRecord } from '../events/span-record.js';
import type { Origin } from './contracts.js';

/** Where a record came from: enough to write it as a reject if the sink refuses it. */
export interface RecordInput {
  origin: Origin;
  subject: string | null;
  /** Stream and sequence (`nats:TASK_EVENTS:42`) for redeliverable input; null otherwise. */
  key: string | null;
}

/**
 * One unit that flows from a source to a sink: an event, a dead-letter entry (with its trace event),
 * or a reject.
 */
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

/** Tasks a committed write made terminal for the first time, by that status (counted after the commit). */
export interface TerminalCounts {
  completed: number;
  failed: number;
  timed_out: number;
}

/** No task became terminal. */
export const NO_TERMINAL: Readonly<TerminalCounts> = Object.freeze({ completed: 0, failed: 0, timed_out: 0 });
