import type { RecordResult, TerminalCounts, WriteRecord } from './records.js';

/** A running part of the pipeline. */
export interface Component {
  readonly name: string;
  /** Ready for data; long work continues in the background. */
  start(): Promise<void>;
  /** Stop intake, flush, release. Idempotent and safe before start(); respects the deadline. */
  shutdown(deadline: AbortSignal): Promise<void>;
}

/** How a write ended for one accepted input. */
export type WriteOutcome = 'stored' | 'duplicate';

/**
 * An accepted input plus the way to settle it with where it came from
 * (a JetStream message, one item of an HTTP request).
 */
export interface Delivery<T> {
  readonly value: T;
  /** Approximate size in memory, for the byte bound of the buffer. */
  readonly sizeBytes: number;
  /** Only after the write that holds the value is committed. */
  ack(outcome: WriteOutcome): void;
  /** Give the input back unwritten (for example at a shutdown deadline); the source may redeliver it. */
  retry(afterMillis?: number): void;
  /** Permanent: called after the reason (a short code) and its detail are recorded in chronicle_rejects. */
  reject(reason: string, detail: string): void;
}

/** Where an input entered Chronicle. */
export type Origin = 'nats' | 'http' | 'otlp';

/** What a committed write did. */
export interface WriteResult {
  /** How each record was settled, in the order of the records. */
  results: RecordResult[];
  /** Tasks whose state the committed write made terminal for the first time. */
  terminalTasks: TerminalCounts;
}

/** Where the batcher writes: each call is one or more committed transactions. */
export interface Sink {
  /**
   * Commits the batch and says how each record was settled. Throws RetryableError when the store is
   * unavailable (nothing of the batch is committed then), or PartialWriteError when part of it was
   * committed before the rest failed; a record the store refuses is settled as rejected (recorded with
   * its reason) so that the rest still commits.
   */
  write(records: readonly WriteRecord[]): Promise<WriteResult>;
}
