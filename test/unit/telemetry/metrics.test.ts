import { describe, expect, it } from 'vitest';
import {
  DLQ_REASON_LIMIT,
  READY_PROBE_TIMEOUT_MILLIS,
  createMetrics,
} from '../../../src/telemetry/metrics.js';

async function gaugeValue(
  metrics: ReturnType<typeof createMetrics>,
  name: string,
): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  return (await metric?.get())?.values[0]?.value;
}

describe('metrics', () => {
  it('dlq reason label - identifiers as they are, up to the limit; then other; a missing reason is none', () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(metrics.dlqReasonLabel('no_agent')).toBe('no_agent');
    expect(metrics.dlqReasonLabel('schema.v2-mismatch')).toBe('schema.v2-mismatch');
    expect(metrics.dlqReasonLabel(null)).toBe('none');
    expect(metrics.dlqReasonLabel('')).toBe('none');
    expect(metrics.dlqReasonLabel('not an identifier')).toBe('other');
    expect(metrics.dlqReasonLabel('9starts_with_digit')).toBe('other');
    expect(metrics.dlqReasonLabel(`a${'b'.repeat(64)}`)).toBe('other');

    const seen = new Set(['no_agent', 'schema.v2-mismatch']);
    for (let i = 0; seen.size < DLQ_REASON_LIMIT; i++) {
      expect(metrics.dlqReasonLabel(`reason_${i}`)).toBe(`reason_${i}`);
      seen.add(`reason_${i}`);
    }
    // Past the limit a new reason is other; the reasons already labelled keep their label.
    expect(metrics.dlqReasonLabel('one_too_many')).toBe('other');
    expect(metrics.dlqReasonLabel('no_agent')).toBe('no_agent');
    expect(metrics.dlqReasonLabel('reason_0')).toBe('reason_0');
  });

  it('chronicle_ready - the probe decides on each scrape; a failing or hanging probe is 0', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(await gaugeValue(metrics, 'chronicle_ready')).toBe(0);
    let ready = true;
    metrics.observeReadiness(() => Promise.resolve(ready));
    expect(await gaugeValue(metrics, 'chronicle_ready')).toBe(1);
    ready = false;
    expect(await gaugeValue(metrics, 'chronicle_ready')).toBe(0);
    metrics.observeReadiness(() => Promise.reject(new Error('database down')));
    expect(await gaugeValue(metrics, 'chronicle_ready')).toBe(0);
    metrics.observeReadiness(() => new Promise(() => undefined));
    const started = performance.now();
    expect(await gaugeValue(metrics, 'chronicle_ready')).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(READY_PROBE_TIMEOUT_MILLIS - 50);
  });

  it('default metrics - process and Node.js metrics with the chronicle_ prefix, no gauge named _total', async () => {
    const text = await createMetrics().registry.metrics();
    for (const name of [
      'chronicle_process_cpu_seconds_total',
      'chronicle_process_resident_memory_bytes',
      'chronicle_nodejs_eventloop_lag_seconds',
      'chronicle_nodejs_gc_duration_seconds',
      'chronicle_nodejs_active_handles',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+_total) (\S+)$/gm)].filter(
      ([, , type]) => type !== 'counter',
    );
    expect(gaugesNamedTotal).toEqual([]);
  });

  it('terminal statuses and the streams of received inputs start at 0 (rate() needs the series)', async () => {
    const text = await createMetrics({ defaultMetrics: false }).registry.metrics();
    for (const status of ['completed', 'failed', 'timed_out']) {
      expect(text).toContain(`chronicle_tasks_terminal_total{status="${status}"} 0`);
    }
    expect(text).toContain('chronicle_inputs_received_total{origin="http",stream="none"} 0');
    expect(text).toContain('chronicle_inputs_received_total{origin="otlp",stream="none"} 0');
  });
});
