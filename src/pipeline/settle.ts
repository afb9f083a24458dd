import type { Delivery } from './contracts.js';
import type { WriteRecord } from './records.js';

/** A record a source offers, with its approximate size in memory. */
export interface Offer {
  record: WriteRecord;
  sizeBytes: number;
}

/** How one offered record ended. */
export type Settlement =
  | { status: 'stored' | 'duplicate' }
  | { status: 'rejected'; reason: string; detail: string }
  /** Handed back unwritten (a shutdown deadline): the sender should send it again. */
  | { status: 'returned' };

/**
 * Deliveries for records that settle together (the items of one HTTP request, the spans of one
 * NATS message): `settled` resolves, in the order of `offers`, once every one of them is settled.
 * The first settlement of each delivery counts; later ones are ignored.
 */
export function deliverTogether(offers: readonly Offer[]): {
  deliveries: Delivery<WriteRecord>[];
  settled: Promise<Settlement[]>;
} {
  const settlements: Promise<Settlement>[] = [];
  const deliveries = offers.map(({ record, sizeBytes }): Delivery<WriteRecord> => {
    let settle!: (s: Settlement) => void;
    settlements.push(new Promise<Settlement>((resolve) => (settle = resolve)));
    return {
      value: record,
      sizeBytes,
      ack: (status) => settle({ status }),
      retry: () => settle({ status: 'returned' }),
      reject: (reason, detail) => settle({ status: 'rejected', reason, detail }),
    };
  });
  return { deliveries, settled: Promise.all(settlements) };
}
