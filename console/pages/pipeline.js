// Pipeline: this replica's health, dependencies, buffer, writer, span export and intake
// (GET /api/v1/pipeline, or /api/v1/health alone when that is missing), the latest rejects and dead
// letters. Refreshed every 5 s.
import { html } from '../lib/html.js';
import { useApi } from '../lib/api.js';
import { Page, Time } from '../lib/components.js';
import { formatBytes, formatDuration, formatNumber } from '../lib/format.js';
import { DeadLetters } from './task.js';

const REFRESH_MILLIS = 5000;
const RECENT = 20;

function Section({ label, children, className = '' }) {
  return html`<section aria-label=${label} class=${`card ${className}`}>
    <h2>${label}</h2>
    ${children}
  </section>`;
}

/** A fill bar (a <meter>, so its value is announced) with the numbers beside it. */
function Fill({ label, value, max, format }) {
  const ratio = max > 0 ? value / max : 0;
  return html`<div class="fill">
    <label>
      <span class="fill-label">${label}</span>
      <meter min="0" max=${max || 1} value=${value} low=${max * 0.5} high=${max * 0.8} optimum="0"></meter>
    </label>
    <span class="fill-text">${format(value)} of ${format(max)} (${formatNumber(ratio * 100, 1)} %)</span>
  </div>`;
}

/** A state word with an icon, not colour alone. */
function State({ state }) {
  const icon = { up: '●', ok: '●', down: '✕', degraded: '▲', disabled: '○' }[state] ?? '•';
  return html`<span class=${`state state-${state}`}><span aria-hidden="true">${icon} </span>${state}</span>`;
}

/** Counts by a label (rejected by reason, ...) as a short list; — when there are none. */
function ByLabel({ counts }) {
  const entries = Object.entries(counts ?? {}).filter(([, n]) => n > 0);
  if (entries.length === 0) return html`<span class="muted">—</span>`;
  return html`<ul class="by-label">
    ${entries.map(([key, n]) => html`<li key=${key}><code>${key || '(none)'}</code> ${formatNumber(n)}</li>`)}
  </ul>`;
}

function Health({ health }) {
  return html`<${Section} label="Health">
    <p class="big"><${State} state=${health.status} /> ${health.ready ? 'ready' : 'not ready'}</p>
    ${
      health.reasons?.length
        ? html`<ul class="reasons">
            ${health.reasons.map((r) => html`<li key=${r}>${r}</li>`)}
          </ul>`
        : html`<p class="muted">Nothing keeps this replica from being ready.</p>`
    }
  <//>`;
}

function Dependencies({ dependencies }) {
  const entries = Object.entries(dependencies ?? {});
  return html`<${Section} label="Dependencies" className="two">
    <table aria-label="Dependencies" class="compact">
      <thead>
        <tr>
          <th scope="col">Dependency</th>
          <th scope="col">State</th>
          <th scope="col">Detail</th>
        </tr>
      </thead>
      <tbody>
        ${entries.map(
          ([name, d]) =>
            html`<tr key=${name} data-dependency=${name} class=${d.state === 'down' ? 'bad' : undefined}>
              <th scope="row"><code>${name}</code></th>
              <td><${State} state=${d.state} /></td>
              <td>${d.detail ?? ''}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  <//>`;
}

function Buffer({ buffer }) {
  return html`<${Section} label="Buffer">
    <${Fill}
      label="Events"
      value=${buffer.events}
      max=${buffer.max_events}
      format=${(n) => formatNumber(n)}
    />
    <${Fill} label="Bytes" value=${buffer.bytes} max=${buffer.max_bytes} format=${formatBytes} />
    <p class="hint">Accepted input waiting for its flush to Postgres. A full buffer pushes back on intake.</p>
  <//>`;
}

function Writer({ writer }) {
  return html`<${Section} label="Writer">
    <p class="big">
      ${
        writer.failing
          ? html`<${State} state="down" /> failing (${writer.consecutive_failures} in a row)`
          : html`<${State} state="ok" /> writing`
      }
    </p>
    <dl class="kv">
      ${
        'flushes_total' in writer
          ? html`<dt>Flushes</dt>
              <dd>${formatNumber(writer.flushes_total)}</dd>`
          : null
      }
      ${
        'flushed_inputs_total' in writer
          ? html`<dt>Inputs flushed</dt>
              <dd>${formatNumber(writer.flushed_inputs_total)}</dd>`
          : null
      }
      ${
        'write_failures_total' in writer
          ? html`<dt>Write failures</dt>
              <dd class=${writer.write_failures_total ? 'bad-text' : undefined}>
                ${formatNumber(writer.write_failures_total)}
              </dd>`
          : null
      }
      ${
        'write_failure_alerts_total' in writer
          ? html`<dt>Failure alerts sent</dt>
              <dd>${formatNumber(writer.write_failure_alerts_total)}</dd>`
          : null
      }
    </dl>
  <//>`;
}

function Export({ report }) {
  if (!report) {
    return html`<${Section} label="Export"><p class="muted">Not reported by this Chronicle.</p><//>`;
  }
  return html`<${Section} label="Export">
    <p class="big">
      ${report.enabled ? html`<${State} state="up" /> exporting spans over OTLP` : html`<${State} state="disabled" /> no OTLP endpoint`}
    </p>
    <dl class="kv">
      ${
        report.enabled
          ? html`<dt>Backlog</dt>
              <dd class=${report.backlog_spans > 0 ? 'warn-text' : undefined}>
                ${report.backlog_spans === null ? (report.backlog_error ?? 'unknown') : `${report.backlog_capped ? 'at least ' : ''}${formatNumber(report.backlog_spans)} spans`}
              </dd>
              <dt>Oldest waiting</dt>
              <dd>
                ${report.oldest_waiting_seconds === null ? '—' : formatDuration(report.oldest_waiting_seconds * 1000)}
              </dd>`
          : null
      }
      <dt>Oldest unbuilt change</dt>
      <dd class=${report.build_lag_seconds > 10 ? 'warn-text' : undefined}>
        ${report.build_lag_seconds === undefined ? '—' : formatDuration(report.build_lag_seconds * 1000)}
      </dd>
      <dt>Spans built</dt>
      <dd>${formatNumber(report.spans_built_total)}</dd>
      <dt>Build failures</dt>
      <dd class=${report.span_build_failures_total ? 'bad-text' : undefined}>
        ${formatNumber(report.span_build_failures_total)}
      </dd>
      <dt>Spans exported</dt>
      <dd>${formatNumber(report.spans_exported_total)}</dd>
      <dt>Export failures</dt>
      <dd class=${report.export_failures_total ? 'bad-text' : undefined}>
        ${formatNumber(report.export_failures_total)}
      </dd>
    </dl>
  <//>`;
}

function Ingest({ report }) {
  if (!report) return null;
  const streams = Object.entries(report.jetstream ?? {});
  return html`<${Section} label="Ingest" className="wide">
    <dl class="kv columns">
      <dt>Received</dt>
      <dd>${formatNumber(report.received_total)} <${ByLabel} counts=${report.received_by_origin} /></dd>
      <dt>Stored</dt>
      <dd>${formatNumber(report.stored_total)}</dd>
      <dt>Duplicates</dt>
      <dd>${formatNumber(report.duplicates_total)}</dd>
      <dt>Dead letters</dt>
      <dd>${formatNumber(report.dlq_entries_total)}</dd>
      <dt>Rejected</dt>
      <dd class=${report.rejected_total ? 'bad-text' : undefined}>
        ${formatNumber(report.rejected_total)} <${ByLabel} counts=${report.rejected_by_reason} />
      </dd>
      <dt>Backpressure</dt>
      <dd>
        ${formatNumber(report.backpressure_total)} <${ByLabel} counts=${report.backpressure_by_source} />
      </dd>
    </dl>
    ${
      streams.length
        ? html`<table aria-label="JetStream streams" class="compact">
            <thead>
              <tr>
                <th scope="col">Stream</th>
                <th scope="col" class="num">Received</th>
                <th scope="col" class="num">Lag</th>
                <th scope="col">Pulling</th>
                <th scope="col" class="num">Redeliveries</th>
                <th scope="col" class="num">Naks</th>
              </tr>
            </thead>
            <tbody>
              ${streams.map(
                ([name, s]) =>
                  html`<tr key=${name}>
                    <th scope="row"><code>${name}</code></th>
                    <td class="num">${formatNumber(s.received_total)}</td>
                    <td class="num">${s.lag_messages === null ? '—' : formatNumber(s.lag_messages)}</td>
                    <td>${s.paused ? html`<${State} state="degraded" /> paused (buffer full)` : 'yes'}</td>
                    <td class="num">${formatNumber(s.redeliveries_total)}</td>
                    <td class="num">${formatNumber(s.naks_total)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : null
    }
    <p class="hint">Counted by this replica since it started.</p>
  <//>`;
}

function Rejects({ items }) {
  return html`<section aria-label="Recent rejects" class="block">
    <h2>Recent rejects</h2>
    <div class="table-wrap">
      <table aria-label="Recent rejects">
        <thead>
          <tr>
            <th scope="col">Rejected</th>
            <th scope="col">Origin</th>
            <th scope="col">Reason</th>
            <th scope="col">Detail</th>
            <th scope="col">Subject</th>
            <th scope="col" class="num">Size</th>
            <th scope="col">Payload</th>
          </tr>
        </thead>
        <tbody>
          ${items.map(
            (r) =>
              html`<tr key=${r.id} data-reject-id=${r.id}>
                <td><${Time} value=${r.rejected_at} /></td>
                <td>${r.origin}</td>
                <td><code>${r.reason}</code></td>
                <td class="clip" title=${r.detail}>${r.detail}</td>
                <td class="mono">${r.subject ?? '—'}</td>
                <td class="num">${formatBytes(r.payload_bytes)}</td>
                <td>
                  <details class="json">
                    <summary>
                      ${utf8Bytes(r.payload) < r.payload_bytes ? 'payload (truncated)' : 'payload'}
                    </summary>
                    <pre>${prettyPayload(r.payload)}</pre>
                  </details>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${items.length === 0 ? html`<p class="empty">No rejects.</p>` : null}
  </section>`;
}

/** A payload as stored (text): pretty-printed when it is JSON. */
const encoder = new TextEncoder();
/** The UTF-8 size of a string: payload_bytes counts bytes, and a stored payload is UTF-8 text. */
const utf8Bytes = (text) => encoder.encode(text).length;

function prettyPayload(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function PipelinePage() {
  const pipeline = useApi('/api/v1/pipeline', { refreshMillis: REFRESH_MILLIS });
  // Without /api/v1/pipeline (an older Chronicle) the health report still gives most of the page.
  const fallback = useApi(pipeline.error?.status === 404 ? '/api/v1/health' : null, {
    refreshMillis: REFRESH_MILLIS,
  });
  const rejects = useApi(`/api/v1/rejects?limit=${RECENT}`, { refreshMillis: REFRESH_MILLIS });
  const dlq = useApi(`/api/v1/dlq?limit=${RECENT}`, { refreshMillis: REFRESH_MILLIS });

  const report = pipeline.data;
  const health = report?.health ?? fallback.data;
  return html`<${Page}
    title="Pipeline"
    busy=${pipeline.loading || fallback.loading || rejects.loading || dlq.loading}
    errors=${[
      { what: 'Pipeline', error: pipeline.error },
      { what: 'Health', error: fallback.error },
      { what: 'Rejects', error: rejects.error },
      { what: 'Dead letters', error: dlq.error },
    ]}
    actions=${html`<p class="hint">This replica · refreshed every ${REFRESH_MILLIS / 1000} s</p>`}
  >
    ${
      health
        ? html`<div class="cards">
            <${Health} health=${health} />
            <${Dependencies} dependencies=${health.dependencies} />
            <${Buffer} buffer=${health.buffer} />
            <${Writer} writer=${report?.writer ?? health.writer} />
            <${Export} report=${report?.export} />
            <${Ingest} report=${report?.ingest} />
          </div>`
        : null
    }
    ${rejects.data ? html`<${Rejects} items=${rejects.data.items} />` : null}
    ${
      dlq.data
        ? html`<section aria-label="Recent dead letters" class="block">
            <h2>Recent dead letters</h2>
            <${DeadLetters} items=${dlq.data.items} label="Recent dead letters" showTrace />
            ${dlq.data.items.length === 0 ? html`<p class="empty">No dead letters.</p>` : null}
          </section>`
        : null
    }
  <//>`;
}
