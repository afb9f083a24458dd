import type {
  CommittedEvent,
  CommittedRead,
  CommittedPage,
  StreamPosition,
} from '../../../../src/sinks/postgres/queries.js';
import { compileEventFilter } from '../../../../src/api/stream/event-filter.js';
import { comparePositions } from '../../../../src/api/stream/position.js';

/** A committed event at `txid-seq`, of trace `t-<seq>` unless told otherwise. */
export function committed(
  txid: number,
  seq: number,
  fields: Partial<CommittedEvent['event']> = {},
  agent: string | null = null,
  error = false,
): CommittedEvent {
  return {
    position: { txid: BigInt(txid), seq: BigInt(seq) },
    event: {
      event_id: `00000000-0000-4000-8000-${String(txid * 1000 + seq).padStart(12, '0')}`,
      trace_id: `t-${seq}`,
      source: 'test',
      event_type: 'task.progress',
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)),
      metadata: {},
      created_at: new Date(0),
      txid: String(txid),
      seq: String(seq),
      agent,
      is_error: error,
      ...fields,
    },
  };
}

/**
 * readCommitted over an in-memory log: events in stream order, the horizon set by the test (every event
 * below it is "committed"), reads counted and optionally failing.
 */
export function fakeStore(events: CommittedEvent[] = []) {
  const store = {
    events,
    horizon: { txid: 1000n, seq: 0n } as StreamPosition,
    nextTxid: 1000n,
    reads: [] as CommittedRead[],
    fail: undefined as Error | undefined,
    async readCommitted(read: CommittedRead): Promise<CommittedPage> {
      store.reads.push(read);
      await Promise.resolve();
      if (store.fail) throw store.fail;
      const matches = compileEventFilter(read.filter ?? {});
      const found = store.events
        .filter(
          (e) =>
            comparePositions(e.position, read.after) > 0 &&
            e.position.txid < store.horizon.txid &&
            (read.through === undefined || comparePositions(e.position, read.through) <= 0) &&
            matches(e),
        )
        .sort((a, b) => comparePositions(a.position, b.position))
        .slice(0, read.limit);
      return { events: found, horizon: store.horizon, nextTxid: store.nextTxid };
    },
  };
  return store;
}
