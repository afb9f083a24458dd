import type pg from 'pg';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { createSpanBuilder } from '../../src/spans/span-builder.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';

/** Writes the events as HTTP input, then builds every span they give (no settling), as a store would. */
export async function storeWithSpans(pool: pg.Pool, events: readonly CanonicalEvent[]): Promise<void> {
  const writer = createEventWriter({ pool, logger: silentLogger() });
  await writer.write(
    events.map((event) => ({ kind: 'event', input: { origin: 'http', subject: null, key: null }, event })),
  );
  const builder = createSpanBuilder(
    {
      resource: {},
      serviceName: 'chronicle',
      batchTraces: 200,
      concurrency: 1,
      parkMillis: 60_000,
      settleMillis: 0,
      maxDelayMillis: 0,
      idleMillis: 20,
    },
    { pool, logger: silentLogger(), metrics: createMetrics({ defaultMetrics: false }) },
  );
  while ((await builder.buildOnce()) > 0);
}
