/**
 * otel/collector.yaml and otel/tempo.yaml: they parse, every pipeline component is defined, every host
 * they send to is a compose service on the port it listens on, and they use the current formats
 * (Collector 0.16x component names, Tempo 3.0 monolithic configuration).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import {
  composeServices,
  environmentOf,
  hostOf,
  isMap,
  mapAt,
  portOf,
  readYaml,
  volumesOf,
  type YamlMap,
} from './stack-files.js';

const services = composeServices();

/** `type/name` → type. */
const typeOf = (id: string) => id.split('/')[0]!;

describe('otel/collector.yaml', () => {
  const collector = readYaml('otel/collector.yaml') as YamlMap;
  const service = mapAt(collector, 'service');
  const pipelines = Object.entries(mapAt(service, 'pipelines')) as [string, YamlMap][];

  it('collector - every component a pipeline names is defined, and every defined one is used', () => {
    expect(pipelines.length).toBeGreaterThan(0);
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      const defined = Object.keys(mapAt(collector, kind));
      const used = new Set(pipelines.flatMap(([, p]) => (p[kind] as string[] | undefined) ?? []));
      for (const id of used) expect(defined, `${kind}: ${id}`).toContain(id);
      expect([...used].sort(), kind).toEqual([...defined].sort());
    }
    const extensions = (service.extensions as string[]) ?? [];
    expect(extensions.sort()).toEqual(Object.keys(mapAt(collector, 'extensions')).sort());
    expect(extensions).toContain('health_check');
  });

  it('collector - traces go through memory_limiter first, then batch, to Jaeger and Tempo', () => {
    const traces = mapAt(mapAt(service, 'pipelines'), 'traces');
    expect(traces.receivers).toEqual(['otlp']);
    const processors = (traces.processors as string[]).map(typeOf);
    expect(processors[0]).toBe('memory_limiter');
    expect(processors.indexOf('batch')).toBeGreaterThan(0);
    const exporters = traces.exporters as string[];
    const hosts = exporters.map((id) => hostOf(String(mapAt(mapAt(collector, 'exporters'), id).endpoint)));
    expect(hosts.sort()).toEqual(['jaeger', 'tempo']);
  });

  it('collector - exporters use the current type names (otlp_grpc / otlp_http), not the deprecated aliases', () => {
    for (const id of Object.keys(mapAt(collector, 'exporters'))) {
      expect(['otlp', 'otlphttp'], id).not.toContain(typeOf(id));
    }
    expect(Object.keys(mapAt(collector, 'exporters')).map(typeOf)).toEqual(['otlp_grpc', 'otlp_grpc']);
  });

  it('collector - every exporter endpoint is a compose service, on the port where it takes OTLP/gRPC', () => {
    const tempo = readYaml('otel/tempo.yaml') as YamlMap;
    const tempoGrpc = String(
      mapAt(mapAt(mapAt(mapAt(mapAt(tempo, 'distributor'), 'receivers'), 'otlp'), 'protocols'), 'grpc')
        .endpoint,
    );
    // Jaeger v2's default all-in-one configuration takes OTLP/gRPC on 4317.
    const listens: Record<string, number> = { jaeger: 4317, tempo: portOf(tempoGrpc) };
    for (const [id, exporter] of Object.entries(mapAt(collector, 'exporters'))) {
      const endpoint = String((exporter as YamlMap).endpoint);
      const host = hostOf(endpoint);
      expect(Object.keys(services), `${id} sends to ${host}`).toContain(host);
      expect(portOf(endpoint), id).toBe(listens[host]);
      expect(mapAt(exporter, 'tls').insecure, `${id}: plain gRPC inside the compose network`).toBe(true);
    }
  });

  it('collector - listens on all interfaces, where Chronicle sends its spans', () => {
    const protocols = mapAt(mapAt(mapAt(collector, 'receivers'), 'otlp'), 'protocols');
    const http = String(mapAt(protocols, 'http').endpoint);
    expect(hostOf(http)).toBe('0.0.0.0');
    expect(hostOf(String(mapAt(protocols, 'grpc').endpoint))).toBe('0.0.0.0');
    const chronicle = loadConfig(environmentOf(services.chronicle!));
    expect(hostOf(chronicle.export!.url)).toBe('otel-collector');
    expect(portOf(chronicle.export!.url)).toBe(portOf(http));
  });

  it("collector - its own metrics are served on 0.0.0.0:8888, where Prometheus's otel-collector job scrapes", () => {
    const readers = mapAt(mapAt(service, 'telemetry'), 'metrics').readers as YamlMap[];
    const prometheus = readers.map((r) => mapAt(mapAt(mapAt(r, 'pull'), 'exporter'), 'prometheus'));
    expect(prometheus).toEqual([expect.objectContaining({ host: '0.0.0.0', port: 8888 })]);
    const scrape = (readYaml('otel/prometheus.yml') as { scrape_configs: YamlMap[] }).scrape_configs.find(
      (s) => s.job_name === 'otel-collector',
    );
    expect((scrape?.static_configs as { targets: string[] }[])[0]!.targets).toEqual(['otel-collector:8888']);
  });

  it('collector - memory_limiter has a limit, with headroom for spikes', () => {
    const limiter = mapAt(mapAt(collector, 'processors'), 'memory_limiter');
    expect(limiter.limit_mib).toBeGreaterThan(limiter.spike_limit_mib as number);
    expect(limiter.check_interval).toBe('1s');
  });
});

describe('otel/tempo.yaml', () => {
  const tempo = readYaml('otel/tempo.yaml') as YamlMap;

  it('tempo - has no block that Tempo 3.0 removed, and overrides in the scoped format', () => {
    for (const removed of ['ingester', 'ingester_client', 'compactor', 'metrics_generator_client']) {
      expect(tempo, removed).not.toHaveProperty(removed);
    }
    const overrides = mapAt(tempo, 'overrides');
    expect(Object.keys(overrides)).toEqual(['defaults']);
    expect(tempo.target ?? 'all').toBe('all');
  });

  it('tempo - receives OTLP on all interfaces', () => {
    const protocols = mapAt(mapAt(mapAt(mapAt(tempo, 'distributor'), 'receivers'), 'otlp'), 'protocols');
    for (const protocol of ['grpc', 'http']) {
      expect(hostOf(String(mapAt(protocols, protocol).endpoint)), protocol).toBe('0.0.0.0');
    }
  });

  it('tempo - the metrics generator computes service graphs and span metrics', () => {
    const processors = mapAt(mapAt(mapAt(tempo, 'overrides'), 'defaults'), 'metrics_generator').processors;
    expect(processors).toEqual(expect.arrayContaining(['service-graphs', 'span-metrics']));
  });

  it("tempo - remote writes to Prometheus's remote write receiver, a compose service", () => {
    const writes = mapAt(mapAt(tempo, 'metrics_generator'), 'storage').remote_write as YamlMap[];
    expect(writes.length).toBeGreaterThan(0);
    for (const write of writes) {
      const url = new URL(String(write.url));
      expect(Object.keys(services)).toContain(url.hostname);
      expect(url.hostname).toBe('prometheus');
      expect(url.port).toBe('9090');
      expect(url.pathname).toBe('/api/v1/write');
    }
  });

  it('tempo - keeps every file in its volume, with local storage', () => {
    const storage = mapAt(mapAt(tempo, 'storage'), 'trace');
    expect(storage.backend).toBe('local');
    const dataDir = volumesOf(services.tempo!).find((v) => v.source === 'tempo-data')?.target;
    expect(dataDir).toBe('/var/tempo');
    const paths = [
      mapAt(storage, 'wal').path,
      mapAt(storage, 'local').path,
      mapAt(mapAt(tempo, 'metrics_generator'), 'storage').path,
    ];
    for (const p of paths) expect(String(p)).toMatch(/^\/var\/tempo\//);
  });

  it("tempo - serves its API on 3200, where Prometheus's tempo job and Grafana's data source point", () => {
    const port = mapAt(tempo, 'server').http_listen_port;
    expect(port).toBe(3200);
    const scrape = (readYaml('otel/prometheus.yml') as { scrape_configs: YamlMap[] }).scrape_configs.find(
      (s) => s.job_name === 'tempo',
    );
    expect((scrape?.static_configs as { targets: string[] }[])[0]!.targets).toEqual([
      `tempo:${String(port)}`,
    ]);
    const datasources = (
      readYaml('grafana/provisioning/datasources/datasources.yaml') as { datasources: YamlMap[] }
    ).datasources;
    const url = datasources.find((d) => d.type === 'tempo')?.url;
    expect(isMap(url) ? undefined : String(url)).toBe(`http://tempo:${String(port)}`);
  });
});
