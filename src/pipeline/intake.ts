import type { Consumer } from './contracts.js';
import { type Offer, type Settlement, deliverTogether } from './settle.js';

/** Why a request was refused; each source answers it in its own protocol. */
export type Refusal =
  /** Intake has stopped (shutdown): 503. */
  | 'shutting_down'
  /** Writes keep failing: 503 with Retry-After, before the body is read. */
  | 'store_unavailable'
  /** More records than the buffer can ever hold: 413. */
  | 'too_many'
  /** The buffer is full right now: 429 with Retry-After. */
  | 'buffer_full';

/** What became of a request's records: refused whole, or accepted with their settlements to come. */
export type Submitted =
  | { refused: 'too_many' }
  | { refused: 'buffer_full' }
  | { refused: undefined; settled: Promise<Settlement[]> };

/**
 * The admission and settle path of the sources that answer a caller (HTTP ingest, the OTLP/HTTP
 * receiver): refuse early while shutting down or while writes fail, offer a request's records as one
 * urgent group, and hand back how each one settled after its commit.
 */
export interface RequestIntake {
  /** Why a new request must be refused before its body is read; undefined when it may go on. */
  refusal(): 'shutting_down' | 'store_unavailable' | undefined;
  /**
   * Offers one request's records, all or none: `too_many` past the buffer's size (nothing counted),
   * `buffer_full` when there is no room now (counted in chronicle_backpressure_total), else the
   * settlements of the records in their order, after their commit.
   */
  submit(offers: readonly Offer[]): Submitted;
  /** The most records one request may carry. */
  readonly maxRecords: number;
  /** Refuse every new request from now on; requests already accepted still get their answer. */
  stop(): void;
}

export interface RequestIntakeDeps {
  consumer: Consumer;
  /** Called when the buffer refuses a request (the source counts it in its backpressure metric). */
  onBufferFull(): void;
}

export function createRequestIntake(deps: RequestIntakeDeps): RequestIntake {
  const { consumer } = deps;
  let accepting = true;
  return {
    maxRecords: consumer.maxBufferEvents,
    refusal() {
      if (!accepting) return 'shutting_down';
      if (consumer.failing()) return 'store_unavailable';
      return undefined;
    },
    submit(offers) {
      if (offers.length > consumer.maxBufferEvents) return { refused: 'too_many' };
      const { deliveries, settled } = deliverTogether(offers);
      if (!consumer.offer(deliveries, { urgent: true })) {
        deps.onBufferFull();
        return { refused: 'buffer_full' };
      }
      return { refused: undefined, settled };
    },
    stop() {
      accepting = false;
    },
  };
}
