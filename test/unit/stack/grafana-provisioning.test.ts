/**
 * grafana/provisioning: the data sources with the uids the dashboards name, credentials only from the
 * environment, Tempo's correlations through the Prometheus data source; the dashboards provider reading
 * the folder compose mounts.
 */
import { describe, expect, it } from 'vitest';
import { DATASOURCES } from '../../../grafana/generate/model.js';
import {
  composeServices,
  environmentOf,
  hostOf,
  mapAt,
  portOf,
  readYaml,
  volumesOf,
  type YamlMap,
} from './stack-files.js';

interface Datasource extends YamlMap {
  name: string;
  type: string;
  uid: string;
  url: string;
}

const file = readYaml('grafana/provisioning/datasources/datasources.yaml') as {
  apiVersion: number;
  datasources: Datasource[];
};
const byUid = (uid: string) => file.datasources.find((d) => d.uid === uid)!;
const services = composeServices();
const grafanaEnv = environmentOf(services.grafana!);

/** Every string in a value, with its path. */
function strings(value: unknown, at = ''): [string, string][] {
  if (typeof value === 'string') return [[at, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${at}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => strings(v, at === '' ? k : `${at}.${k}`));
  }
  return [];
}

describe('grafana/provisioning/datasources/datasources.yaml', () => {
  it('datasources - provisions exactly the data sources the dashboards name, with their uids and types', () => {
    expect(file.apiVersion).toBe(1);
    const provisioned = file.datasources.map((d) => ({ type: d.type, uid: d.uid }));
    expect(provisioned.sort((a, b) => a.uid.localeCompare(b.uid))).toEqual(
      Object.values(DATASOURCES)
        .map((d) => ({ type: d.type, uid: d.uid }))
        .sort((a, b) => a.uid.localeCompare(b.uid)),
    );
    expect(byUid('chronicle-postgres').type).toBe('grafana-postgresql-datasource');
    expect(['prometheus', 'tempo', 'jaeger'].map((uid) => byUid(uid).type)).toEqual([
      'prometheus',
      'tempo',
      'jaeger',
    ]);
    expect(new Set(file.datasources.map((d) => d.name)).size).toBe(file.datasources.length);
    expect(file.datasources.filter((d) => d.isDefault === true)).toHaveLength(1);
  });

  it('datasources - every URL is a compose service on the port it serves', () => {
    const ports: Record<string, number> = { postgres: 5432, prometheus: 9090, tempo: 3200, jaeger: 16686 };
    for (const d of file.datasources) {
      const host = hostOf(d.url);
      expect(Object.keys(services), d.name).toContain(host);
      expect(portOf(d.url), d.name).toBe(ports[host]);
    }
  });

  it('datasources - Postgres reads its database and credentials from the environment, the password as a secret', () => {
    const pg = byUid('chronicle-postgres');
    expect(pg.url).toBe('postgres:5432');
    expect(pg.user).toBe('$__env{GRAFANA_DB_USER}');
    const jsonData = mapAt(pg, 'jsonData');
    expect(jsonData).toMatchObject({
      database: '$__env{CHRONICLE_DB_NAME}',
      sslmode: 'disable',
      postgresVersion: 1800,
      timescaledb: false,
    });
    expect(mapAt(pg, 'secureJsonData')).toEqual({ password: '$__env{GRAFANA_DB_PASSWORD}' });
    // Nowhere else: not in jsonData, not at the top level.
    expect(pg).not.toHaveProperty('password');
    expect(jsonData).not.toHaveProperty('password');
  });

  it('datasources - every $__env{…} names a variable compose gives Grafana, and no other $ is left for Grafana to expand', () => {
    const names = new Set<string>();
    for (const [where, value] of strings(file)) {
      for (const match of value.matchAll(/\$__env\{(\w+)\}/g)) names.add(match[1]!);
      // Grafana expands $NAME and ${NAME} from its environment in provisioning files: a literal $ is $$.
      const leftover = value.replace(/\$\$/g, '').replace(/\$__env\{\w+\}/g, '');
      expect(leftover, `${where}: ${value}`).not.toContain('$');
    }
    expect([...names].sort()).toEqual(['CHRONICLE_DB_NAME', 'GRAFANA_DB_PASSWORD', 'GRAFANA_DB_USER']);
    for (const name of names) expect(grafanaEnv[name], name).toMatch(/\S/);
  });

  it("datasources - the credentials are the read-only role that compose's Postgres creates", () => {
    const postgres = environmentOf(services.postgres!);
    expect(grafanaEnv.CHRONICLE_DB_NAME).toBe(postgres.POSTGRES_DB);
    expect(grafanaEnv.GRAFANA_DB_USER).not.toBe(postgres.POSTGRES_USER);
  });

  it('datasources - Tempo links traces to metrics and draws its service map through the Prometheus data source', () => {
    const jsonData = mapAt(byUid('tempo'), 'jsonData');
    const prometheusUid = byUid('prometheus').uid;
    const tracesToMetrics = mapAt(jsonData, 'tracesToMetrics');
    expect(tracesToMetrics.datasourceUid).toBe(prometheusUid);
    expect(mapAt(jsonData, 'serviceMap').datasourceUid).toBe(prometheusUid);
    expect(mapAt(jsonData, 'nodeGraph').enabled).toBe(true);
    expect(mapAt(jsonData, 'search').hide).toBe(false);
    // The queries read the span metrics Tempo's metrics generator writes, by the mapped tags.
    const queries = tracesToMetrics.queries as { name: string; query: string }[];
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) {
      expect(q.query, q.name).toMatch(/traces_spanmetrics_(calls_total|latency_bucket)\{\$\$__tags/);
    }
    expect(tracesToMetrics.tags).toContainEqual({ key: 'service.name', value: 'service' });
  });

  it("datasources - Prometheus exemplars link to Tempo by the label Tempo's metrics generator writes", () => {
    const jsonData = mapAt(byUid('prometheus'), 'jsonData');
    expect(jsonData.exemplarTraceIdDestinations).toEqual([
      { name: 'traceID', datasourceUid: byUid('tempo').uid },
    ]);
  });
});

describe('grafana/provisioning/dashboards/dashboards.yaml', () => {
  it('dashboards - a file provider reads the folder compose mounts, into the folder Chronicle', () => {
    const file = readYaml('grafana/provisioning/dashboards/dashboards.yaml') as {
      apiVersion: number;
      providers: YamlMap[];
    };
    expect(file.apiVersion).toBe(1);
    expect(file.providers).toHaveLength(1);
    const provider = file.providers[0]!;
    expect(provider.type).toBe('file');
    expect(provider.folder).toBe('Chronicle');
    const mounted = volumesOf(services.grafana!).find((v) => v.source === './grafana/dashboards')?.target;
    expect(mapAt(provider, 'options').path).toBe(mounted);
  });
});
