import type { StoredSpanRow } from '../sinks/postgres/queries.js';
import type { SpanRecord } from '../events/span-record.js';

/** Where the trace backend's UIs are, for links served with a trace. */
export interface TraceLinkOptions {
  jaegerUiUrl: string | undefined;
  grafanaUrl: string | undefined;
  /** UID of the Tempo data source in Grafana. */
  tempoDatasourceUid: string;
}

/** A span as exported, with when it was exported and the spans under it. */
export type SpanNode = SpanRecord & { exported_at: Date | null; children: SpanNode[] };

/**
 * The spans of a trace as a parent/child tree, each exactly as stored and exported plus `exported_at`
 * and `children`. A span whose parent is not stored (yet: a task's root goes out when it ends) is a root
 * of the tree. Siblings keep the store's order (start time, then span id).
 */
export function spanTree(rows: readonly StoredSpanRow[]): SpanNode[] {
  const nodes = rows.map((r): SpanNode => ({ ...r.span, exported_at: r.exported_at, children: [] }));
  const byId = new Map(nodes.map((n) => [`${n.traceId}/${n.spanId}`, n]));
  const roots: SpanNode[] = [];
  for (const node of nodes) {
    const parent = node.parentSpanId === null ? undefined : byId.get(`${node.traceId}/${node.parentSpanId}`);
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  return roots;
}

/** Links to the trace in Jaeger's UI and in Grafana Explore on Tempo, for those configured. */
export function traceLinks(
  otelTraceIdHex: string,
  window: { from: Date; to: Date },
  options: TraceLinkOptions,
): { jaeger?: string; grafana?: string } {
  const id = otelTraceIdHex;
  const links: { jaeger?: string; grafana?: string } = {};
  if (options.jaegerUiUrl) links.jaeger = `${options.jaegerUiUrl.replace(/\/+$/, '')}/trace/${id}`;
  if (options.grafanaUrl) {
    // Explore's pane state (Grafana 10+): a TraceQL query for the trace id, over the trace's time ± 1 h.
    const hour = 3_600_000;
    const panes = {
      trace: {
        datasource: options.tempoDatasourceUid,
        queries: [
          {
            refId: 'A',
            datasource: { type: 'tempo', uid: options.tempoDatasourceUid },
            queryType: 'traceql',
            query: id,
          },
        ],
        range: { from: String(window.from.getTime() - hour), to: String(window.to.getTime() + hour) },
      },
    };
    const query = new URLSearchParams({ schemaVersion: '1', panes: JSON.stringify(panes), orgId: '1' });
    links.grafana = `${options.grafanaUrl.replace(/\/+$/, '')}/explore?${query.toString()}`;
  }
  return links;
}
