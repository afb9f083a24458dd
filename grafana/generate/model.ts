/**
 * What every generated dashboard shares: the provisioned data sources (grafana/provisioning/datasources,
 * fixed uids the dashboards name) and the dashboards' own uids, so links between them are stable, and
 * the header link to all of them.
 */

/** A data source reference as a panel, target or variable names it. */
export interface DataSourceRef {
  readonly type: string;
  readonly uid: string;
}

export const DATASOURCES = {
  postgres: { type: 'grafana-postgresql-datasource', uid: 'chronicle-postgres' },
  prometheus: { type: 'prometheus', uid: 'prometheus' },
  tempo: { type: 'tempo', uid: 'tempo' },
  jaeger: { type: 'jaeger', uid: 'jaeger' },
} as const satisfies Record<string, DataSourceRef>;

/** Dashboard uids: `/d/<uid>` links between dashboards use these. */
export const DASHBOARD_UIDS = {
  swarmOverview: 'chronicle-swarm-overview',
  taskDrilldown: 'chronicle-task',
  agentPerformance: 'chronicle-agents',
  pipeline: 'chronicle-pipeline',
  traces: 'chronicle-traces',
} as const;

/** The header dropdown listing every dashboard tagged `chronicle`, keeping the time range. */
export function chronicleDashboardsLink(): Record<string, unknown> {
  return {
    type: 'dashboards',
    title: 'Chronicle',
    tags: ['chronicle'],
    asDropdown: true,
    includeVars: false,
    keepTime: true,
    targetBlank: false,
    icon: 'external link',
    tooltip: '',
    url: '',
  };
}

/** A Grafana dashboard model (the JSON Grafana stores), kept loose: Grafana's schema is large. */
export type Dashboard = Record<string, unknown> & { uid: string; title: string; panels: unknown[] };

/** A dashboard and the file under grafana/dashboards/ it is written to. */
export interface DashboardFile {
  readonly file: string;
  readonly dashboard: Dashboard;
}
