// The waterfall of a trace: one bar per span on one time axis, in depth-first pre-order of the span
// tree (siblings by start time), drawn from the spans GET /api/v1/traces/:id returns.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { formatDuration, localText, utcText } from './format.js';

const ROW = 24;
const BAR = 14;
const AXIS = 30;
const INDENT = 14;
const CHAR_PX = 7;

const STATUS_ERROR = 2;

/** Nanoseconds (a decimal string) as a BigInt; 0n when missing. */
const nanos = (text) => {
  try {
    return BigInt(text ?? '0');
  } catch {
    return 0n;
  }
};

/** Whether a span's status is ERROR. */
export const isErrorSpan = (span) => span.status?.code === STATUS_ERROR;

/** A span's status message, or the error attributes that say the same. */
export function spanMessage(span) {
  const attributes = span.attributes ?? {};
  return span.status?.message || attributes['error.message'] || attributes['exception.message'] || null;
}

/**
 * The spans of a tree as rows: depth-first pre-order, siblings by start time (then span id), each
 * with its depth and its start and duration in milliseconds from the earliest start.
 */
export function waterfallRows(roots) {
  const all = [];
  const walk = (nodes, depth) => {
    const sorted = [...nodes].sort((a, b) => {
      const d = nanos(a.startTimeUnixNano) - nanos(b.startTimeUnixNano);
      return d < 0n ? -1 : d > 0n ? 1 : a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0;
    });
    for (const span of sorted) {
      all.push({ span, depth });
      walk(span.children ?? [], depth + 1);
    }
  };
  walk(roots, 0);
  if (all.length === 0) return { rows: [], totalMs: 0, t0: 0n };
  const t0 = all.reduce((min, r) => {
    const s = nanos(r.span.startTimeUnixNano);
    return s < min ? s : min;
  }, nanos(all[0].span.startTimeUnixNano));
  const t1 = all.reduce((max, r) => {
    const e = nanos(r.span.endTimeUnixNano);
    return e > max ? e : max;
  }, t0);
  const ms = (ns) => Number(ns - t0) / 1e6;
  const rows = all.map(({ span, depth }) => {
    const startMs = ms(nanos(span.startTimeUnixNano));
    const endMs = Math.max(startMs, ms(nanos(span.endTimeUnixNano)));
    return { span, depth, startMs, durationMs: endMs - startMs, error: isErrorSpan(span) };
  });
  return { rows, totalMs: ms(t1), t0 };
}

/** Tick spacing: 1, 2 or 5 × 10^k ms, about `count` ticks over `totalMs`. */
function tickStep(totalMs, count) {
  const raw = totalMs / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) ?? 10 * power;
}

/** Colour class of a span, by its role in a task trace (otherwise by its name's kind). */
function roleOf(name) {
  if (name === 'swarm.task') return 'root';
  if (name === 'swarm.task.queue_wait') return 'wait';
  if (name === 'swarm.task.pickup') return 'pickup';
  if (name === 'swarm.task.update') return 'update';
  if (name.startsWith('invoke_agent')) return 'work';
  return 'other';
}

const LEGEND = [
  ['root', 'task'],
  ['wait', 'queue wait'],
  ['pickup', 'pickup'],
  ['work', 'agent at work'],
  ['update', 'update'],
  ['other', 'other span'],
];

/** Follows an element's width (the SVG is drawn at the pixel width it has, so text stays readable). */
function useWidth(fallback) {
  const ref = useRef(null);
  const [width, setWidth] = useState(fallback);
  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return undefined;
    const measure = () => setWidth(Math.max(480, Math.floor(element.clientWidth)));
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

const truncate = (text, chars) => (text.length <= chars ? text : `${text.slice(0, Math.max(1, chars - 1))}…`);

/**
 * The waterfall SVG and, under it, the selected span's details. `onSelect` is told the span focused,
 * hovered or clicked.
 */
export function Waterfall({ spans }) {
  const [ref, width] = useWidth(1000);
  const { rows, totalMs, t0 } = waterfallRows(spans);
  const firstError = rows.find((r) => r.error);
  const [selectedId, setSelectedId] = useState(null);
  useEffect(() => {
    if (selectedId === null && rows.length) setSelectedId((firstError ?? rows[0]).span.spanId);
  }, [rows.length]);

  if (rows.length === 0) return null;

  const labelWidth = Math.min(300, Math.round(width * 0.28));
  const left = labelWidth + 8;
  const barsWidth = width - left - 12;
  const scale = totalMs > 0 ? barsWidth / totalMs : 0;
  const height = AXIS + rows.length * ROW + 6;
  const step = totalMs > 0 ? tickStep(totalMs, Math.max(2, Math.floor(barsWidth / 110))) : 1;
  const ticks = [];
  for (let t = 0; totalMs > 0 && t <= totalMs + step / 1e6; t += step) ticks.push(t);
  const selected = rows.find((r) => r.span.spanId === selectedId) ?? rows[0];
  // The legend lists the kinds of span this trace has, not every kind there is.
  const roles = new Set(rows.map((r) => roleOf(r.span.name)));

  return html`<div class="waterfall" ref=${ref}>
    <svg role="group" aria-label="Waterfall" width=${width} height=${height} class="waterfall-svg">
      <defs>
        <pattern
          id="error-hatch"
          patternUnits="userSpaceOnUse"
          width="6"
          height="6"
          patternTransform="rotate(45)"
        >
          <rect width="6" height="6" class="hatch-bg" />
          <line x1="0" y1="0" x2="0" y2="6" class="hatch-line" />
        </pattern>
      </defs>
      ${rows.map((_, i) =>
        i % 2
          ? html`<rect
              key=${`bg${i}`}
              class="stripe"
              x="0"
              y=${AXIS + i * ROW}
              width=${width}
              height=${ROW}
            />`
          : null,
      )}
      <g class="axis" aria-hidden="true">
        <text x="8" y="18" class="axis-title">Span</text>
        ${ticks.map((t) => {
          const x = left + t * scale;
          return html`<g key=${t}>
            <line x1=${x} x2=${x} y1=${AXIS - 6} y2=${height} class="grid" />
            <text x=${x} y="18" text-anchor=${t === 0 ? 'start' : x > width - 40 ? 'end' : 'middle'}>
              ${formatDuration(t)}
            </text>
          </g>`;
        })}
      </g>
      ${rows.map(({ span, depth, startMs, durationMs, error }, i) => {
        const y = AXIS + i * ROW;
        const x = left + startMs * scale;
        // To scale; a span too short to see still gets a pixel (and a marker below).
        const w = Math.max(durationMs * scale, 1);
        const message = error ? spanMessage(span) : null;
        const label = truncate(span.name, Math.floor((labelWidth - 8 - depth * INDENT) / CHAR_PX));
        const note = `${formatDuration(durationMs)}${message ? ` · ✕ ${message}` : error ? ' · ✕ error' : ''}`;
        // The note goes after the bar, else before it (within the bars' area), else inside it.
        const noteWidth = note.length * 6.5;
        const place =
          x + Math.max(w, 4) + 6 + noteWidth < width
            ? 'after'
            : x - 6 - noteWidth >= left
              ? 'before'
              : 'inside';
        const noteX = place === 'after' ? x + Math.max(w, 4) + 6 : place === 'before' ? x - 6 : x + 6;
        const select = () => setSelectedId(span.spanId);
        const summary = `${span.name} — ${formatDuration(durationMs)}${error ? ` — error${message ? `: ${message}` : ''}` : ''}`;
        // A button to assistive technology (the svg is a group, not an image), named by its summary.
        return html`<g
          role="button"
          aria-label=${summary}
          key=${span.spanId}
          data-span-id=${span.spanId}
          data-span-name=${span.name}
          data-error=${error ? 'true' : 'false'}
          class=${`span role-${roleOf(span.name)}${error ? ' error' : ''}${selected === rows[i] ? ' selected' : ''}`}
          tabindex="0"
          onFocus=${select}
          onMouseEnter=${select}
          onClick=${select}
        >
          <title>${summary}</title>
          <text class="label" x=${8 + depth * INDENT} y=${y + ROW / 2 + 4}>${error ? '✕ ' : ''}${label}</text>
          <rect class="bar" x=${x} y=${y + (ROW - BAR) / 2} width=${w} height=${BAR} rx="2" />
          ${w < 2 ? html`<path class="point" d=${`M${x} ${y + 5}l4 7l-4 7l-4 -7z`} />` : null}
          <text
            class=${`note${error ? ' error-note' : ''}${place === 'inside' ? ' inside' : ''}`}
            x=${noteX}
            y=${y + ROW / 2 + 4}
            text-anchor=${place === 'before' ? 'end' : 'start'}
          >
            ${note}
          </text>
        </g>`;
      })}
    </svg>
    <ul class="legend" aria-label="Legend">
      ${LEGEND.filter(([role]) => roles.has(role)).map(
        ([role, text]) => html`<li key=${role}><span class=${`swatch role-${role}`}></span>${text}</li>`,
      )}
      ${firstError ? html`<li><span class="swatch error"></span>✕ error</li>` : null}
    </ul>
    <${SpanDetails} row=${selected} t0=${t0} />
  </div>`;
}

/** The selected span: name, times, status and its attributes. */
function SpanDetails({ row, t0 }) {
  const { span } = row;
  const start = new Date(Number(t0 / 1_000_000n) + row.startMs);
  const attributes = Object.entries(span.attributes ?? {});
  const service = span.resource?.['service.name'];
  const message = spanMessage(span);
  return html`<section aria-label="Selected span" class="span-details">
    <h3>
      ${row.error ? html`<span class="error-text">✕ </span>` : null}<code>${span.name}</code>
      <span class="muted"> · ${formatDuration(row.durationMs)}</span>
    </h3>
    <dl class="kv">
      <dt>Start</dt>
      <dd>
        <time datetime=${start.toISOString()} title=${utcText(start)}
          >${localText(start, { millis: true })}</time
        >${` (+${formatDuration(row.startMs)})`}
      </dd>
      <dt>Status</dt>
      <dd class=${row.error ? 'error-text' : undefined}>
        ${row.error ? 'error' : span.status?.code === 1 ? 'ok' : 'unset'}${message ? `: ${message}` : ''}
      </dd>
      ${
        service
          ? html`<dt>Service</dt>
              <dd>${service}</dd>`
          : null
      }
      <dt>Span id</dt>
      <dd class="mono">
        ${span.spanId}${span.parentSpanId ? html` <span class="muted">(parent ${span.parentSpanId})</span>` : null}
      </dd>
    </dl>
    ${
      attributes.length
        ? html`<details>
            <summary>${attributes.length} attributes</summary>
            <table class="attributes" aria-label="Span attributes">
              <tbody>
                ${attributes.map(
                  ([key, value]) =>
                    html`<tr key=${key}>
                      <th scope="row" class="mono">${key}</th>
                      <td class="mono">${typeof value === 'string' ? value : JSON.stringify(value)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </details>`
        : null
    }
  </section>`;
}
