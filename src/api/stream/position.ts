import type { StreamPosition } from '../../sinks/postgres/queries.js';

/** Before every event (rows stored before the stream existed are at 0-0, never after it). */
export const STREAM_START: StreamPosition = Object.freeze({ txid: 0n, seq: 0n });

const MAX_TXID = 2n ** 64n - 1n;
const MAX_SEQ = 2n ** 63n - 1n;

/** `<txid>-<seq>` (decimal, as the stream's `id:` lines give it) → the position; undefined when it is not one. */
export function parseStreamPosition(value: string): StreamPosition | undefined {
  const m = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,18})$/.exec(value);
  if (!m) return undefined;
  const txid = BigInt(m[1]!);
  const seq = BigInt(m[2]!);
  return txid <= MAX_TXID && seq <= MAX_SEQ ? { txid, seq } : undefined;
}

/** The stream's `id:` of a position. */
export function formatStreamPosition(position: StreamPosition): string {
  return `${position.txid}-${position.seq}`;
}

/** Negative, zero or positive as `a` is before, at or after `b` in stream order. */
export function comparePositions(a: StreamPosition, b: StreamPosition): number {
  if (a.txid !== b.txid) return a.txid < b.txid ? -1 : 1;
  return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}

/** The later of two positions. */
export function laterPosition(a: StreamPosition, b: StreamPosition): StreamPosition {
  return comparePositions(a, b) >= 0 ? a : b;
}
