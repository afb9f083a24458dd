import type { Delivery } from '../../src/pipeline/contracts.js';

/**
 * The same deliveries with settlements that reach nobody: what a source sees when the process dies right
 * after each commit (the write happens; no ack, retry or reject gets back to the message).
 */
export function withoutSettlements<T>(deliveries: readonly Delivery<T>[]): Delivery<T>[] {
  return deliveries.map((d) => ({
    value: d.value,
    sizeBytes: d.sizeBytes,
    ack: () => undefined,
    retry: () => undefined,
    reject: () => undefined,
  }));
}
