import type { RecordResult, TerminalCounts, WriteRecord } from './records.js';

/** State of one dependency as the health endpoints report it. */
export interface DependencyState {
  /** `up`, `down`, or `disabled` (not configured). */
  state: 'up' | 'down' | 'disabled';
  detail?: string;
}

/** What a component says about itself for /ready and /api/v1/health. */
export interface ComponentHealth {
  /** Entries of the report's `dependencies`, by name (`postgres`, `nats`, ...). */
  dependencies?: Record<string, DependencyState>;
  /** Why this component keeps Chronicle from being ready; empty or absent when it does not. */
  reasons?: string[];
}

/**
 * A running part of the pipeline. The service runner (runner.ts) starts components in dependency
 * order and shuts them down in reverse: intake first, then the drain, then the store.
 */
export interface Component {
  /** Short and stable: it names the component in logs and errors. */
  readonly name: string;
  /** Ready for data; long work (connecting, migrating, pulling) continues in the background. */
  start(): Promise<void>;
  /** Stop intake, flush, release. Idempotent and safe before start(); returns by the deadline. */
  shutdown(deadline: AbortSignal): Promise<void>;
  /** Its own state, when it has something to say about readiness; computed on each call. */
  health?(): ComponentHealth | Promise<ComponentHealth>;
}

/** Where an input entered Chronicle (chronicle_rejects.origin and the metrics' origin label). */
export type Origin = 'nats' | 'http' | 'otlp';

/**
 * A component that takes input from outside Chronicle and offers it to a Consumer. Its shutdown
 * stops intake and returns once it will offer nothing more; what it already offered settles as the
 * consumer drains (the runner shuts the consumer down after every source).
 */
export interface Source extends Component {
  /** Where its input enters Chronicle. */
  readonly origin: Origin;
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

/** What a source offers its deliveries to (the batcher): a bounded buffer with backpressure. */
export interface Consumer {
  /**
   * Takes all of the deliveries or none of them: false when they would exceed the buffer bounds
   * (a request alone larger than the bounds is taken when nothing else is held). `urgent` deliveries
   * have a caller waiting and are flushed after a short linger.
   */
  offer(deliveries: readonly Delivery<WriteRecord>[], options?: { urgent?: boolean }): boolean;
  /** True when `events` more inputs of `bytes` in all would be taken now (the test offer() applies). */
  hasRoom(events: number, bytes?: number): boolean;
  /**
   * Resolves when `events` more inputs of `bytes` would be taken, when the consumer stops taking
   * input (drain), or when the signal aborts.
   */
  waitForRoom(events: number, bytes?: number, signal?: AbortSignal): Promise<void>;
  /** False once the consumer has begun to drain: offer() then always refuses. */
  accepting(): boolean;
  /** True while writes keep failing: a source with a caller waiting refuses new input (503). */
  failing(): boolean;
  /** The most inputs the buffer holds; one request or message may carry no more. */
  readonly maxBufferEvents: number;
}

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
