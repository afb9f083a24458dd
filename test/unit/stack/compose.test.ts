/**
 * docker-compose.yml: valid against the Compose Specification's JSON schema, pinned images, a
 * dependency graph that Compose can start, mounts of files that exist, and a Chronicle environment
 * that Chronicle's own configuration loader accepts.
 */
import { readFileSync, statSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import {
  compose,
  composeServices,
  environmentOf,
  hostOf,
  isMap,
  mapAt,
  portOf,
  rawCompose,
  repoPath,
  volumesOf,
} from './stack-files.js';

const SERVICES = [
  'nats',
  'postgres',
  'chronicle',
  'otel-collector',
  'jaeger',
  'tempo',
  'prometheus',
  'grafana',
  'simulator',
];

/** Host ports of the shared contract (README "Full stack"). */
const HOST_PORTS: Record<string, number[]> = {
  chronicle: [8700],
  grafana: [3000],
  jaeger: [16686],
  prometheus: [9090],
  tempo: [3200],
  'otel-collector': [4317, 4318],
  nats: [4222],
  postgres: [5432],
};

function loadSchema(): object {
  return JSON.parse(readFileSync(repoPath('test/fixtures/compose-spec/compose-spec.json'), 'utf8')) as object;
}

function publishedPorts(service: Record<string, unknown>): number[] {
  const ports = service.ports;
  if (ports === undefined) return [];
  if (!Array.isArray(ports)) throw new Error('ports is not a list');
  return ports.map((p) => {
    const match = /^(?:[\d.]+:)?(\d+):(\d+)(?:\/tcp)?$/.exec(String(p));
    if (!match) throw new Error(`port ${String(p)} is not HOST:CONTAINER`);
    expect(match[1], `${String(p)}: the same port on the host as in the container`).toBe(match[2]);
    return Number(match[1]);
  });
}

function dependsOn(service: Record<string, unknown>): Record<string, string> {
  const deps = service.depends_on;
  if (deps === undefined) return {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [String(d), 'service_started']));
  if (!isMap(deps)) throw new Error('depends_on is neither a list nor a map');
  return Object.fromEntries(
    Object.entries(deps).map(([name, d]) => [name, isMap(d) ? String(d.condition) : 'service_started']),
  );
}

function hasHealthcheck(service: Record<string, unknown>): boolean {
  const hc = service.healthcheck;
  return isMap(hc) && hc.disable !== true && Array.isArray(hc.test) && hc.test.length > 1;
}

describe('docker-compose.yml', () => {
  const services = composeServices();

  it('compose - validates against the Compose Specification schema', () => {
    const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true, strictTypes: false });
    const validate = ajv.compile(loadSchema());
    // As Compose does: interpolated first (defaults applied), then validated. The raw file too: every
    // variable sits in a string.
    for (const doc of [compose(), rawCompose()]) {
      const valid = validate(doc);
      expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
      expect(valid).toBe(true);
    }
  });

  it('compose - the schema check itself rejects what Compose rejects', () => {
    const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true, strictTypes: false });
    const validate = ajv.compile(loadSchema());
    const broken = structuredClone(compose());
    (mapAt(mapAt(broken, 'services'), 'chronicle') as Record<string, unknown>).depends_on = {
      postgres: { condition: 'service_ready' },
    };
    expect(validate(broken)).toBe(false);
    const unknownKey = structuredClone(compose());
    (mapAt(mapAt(unknownKey, 'services'), 'grafana') as Record<string, unknown>).imagee = 'x';
    expect(validate(unknownKey)).toBe(false);
  });

  it('compose - has exactly the services of the contract, the simulator only in the demo profile', () => {
    expect(Object.keys(services).sort()).toEqual([...SERVICES].sort());
    expect(services.simulator!.profiles).toEqual(['demo']);
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'simulator') expect(service.profiles, name).toBeUndefined();
    }
  });

  it('compose - every image is pinned to an explicit version tag', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.image === undefined) {
        expect(service.build, `${name} has neither image nor build`).toBeDefined();
        continue;
      }
      expect(typeof service.image, name).toBe('string');
      const image = service.image as string;
      const match = /^([a-z0-9][\w./-]*):([\w.-]+)$/.exec(image);
      expect(match, `${name}: ${image} has no tag`).not.toBeNull();
      const tag = match![2]!;
      expect(tag, `${name}: ${image}`).not.toMatch(/latest/);
      // A dotted version (major.minor at least), not a major-only or floating tag.
      expect(tag, `${name}: ${image} is not pinned to a version`).toMatch(
        /^v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$/,
      );
    }
  });

  it('compose - builds Chronicle from the repository Dockerfile', () => {
    for (const name of ['chronicle', 'simulator']) {
      const build = services[name]!.build;
      const context = typeof build === 'string' ? build : String(mapAt(services[name], 'build').context);
      expect(context, name).toBe('.');
      expect(statSync(repoPath('Dockerfile')).isFile()).toBe(true);
    }
  });

  it('compose - depends_on names existing services, and service_healthy ones that have a healthcheck', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, condition] of Object.entries(dependsOn(service))) {
        expect(Object.keys(services), `${name} depends on ${dep}`).toContain(dep);
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
        if (condition === 'service_healthy') {
          expect(hasHealthcheck(services[dep]!), `${name} waits for ${dep} to be healthy`).toBe(true);
        }
        // A service every `docker compose up` starts cannot wait for one that only a profile starts.
        if (service.profiles === undefined)
          expect(services[dep]!.profiles, `${name} → ${dep}`).toBeUndefined();
      }
    }
  });

  it('compose - Chronicle starts after Postgres and NATS are healthy', () => {
    expect(dependsOn(services.chronicle!)).toMatchObject({
      postgres: 'service_healthy',
      nats: 'service_healthy',
    });
    expect(dependsOn(services.simulator!)).toMatchObject({ chronicle: 'service_healthy' });
  });

  it('compose - NATS runs JetStream and its healthcheck asks for it', () => {
    expect(services.nats!.command).toContain('-js');
    const test = (mapAt(services.nats, 'healthcheck').test as string[]).join(' ');
    expect(test).toContain(':8222/healthz?js-enabled-only=true');
    expect(services.nats!.command).toEqual(expect.arrayContaining(['-m', '8222']));
  });

  it('compose - Postgres 18 keeps its data in a named volume at /var/lib/postgresql', () => {
    expect(String(services.postgres!.image)).toMatch(/^postgres:18\./);
    expect(volumesOf(services.postgres!)).toContainEqual({
      source: 'postgres-data',
      target: '/var/lib/postgresql',
      mode: undefined,
    });
    expect((mapAt(services.postgres, 'healthcheck').test as string[]).join(' ')).toContain('pg_isready');
  });

  it('compose - publishes the ports of the contract', () => {
    for (const [name, ports] of Object.entries(HOST_PORTS)) {
      expect(publishedPorts(services[name]!).sort(), name).toEqual(ports);
    }
    expect(publishedPorts(services.simulator!)).toEqual([]);
  });

  it('compose - every ./path it mounts exists, and every named volume is declared', () => {
    const declared = Object.keys(mapAt(compose(), 'volumes'));
    const used = new Set<string>();
    for (const [name, service] of Object.entries(services)) {
      for (const { source, target } of volumesOf(service)) {
        expect(target, `${name}: ${target}`).toMatch(/^\//);
        if (source.startsWith('.') || source.startsWith('/')) {
          expect(source, `${name}: mounts from the repository only`).toMatch(/^\.\//);
          const stat = statSync(repoPath(source), { throwIfNoEntry: false });
          expect(stat, `${name} mounts ${source}, which does not exist`).toBeDefined();
        } else {
          expect(declared, `${name} uses volume ${source}`).toContain(source);
          used.add(source);
        }
      }
    }
    expect([...used].sort()).toEqual([...declared].sort());
  });

  it('compose - the mounted configs are where each program reads them', () => {
    const mount = (service: string, source: string) =>
      volumesOf(services[service]!).find((v) => v.source === source)?.target;
    expect(services['otel-collector']!.command).toContain(
      `--config=${mount('otel-collector', './otel/collector.yaml')}`,
    );
    expect(services.tempo!.command).toContain(`-config.file=${mount('tempo', './otel/tempo.yaml')}`);
    expect(services.prometheus!.command).toContain(
      `--config.file=${mount('prometheus', './otel/prometheus.yml')}`,
    );
    // prometheus.yml names its rules relative to itself.
    expect(mount('prometheus', './otel/alerts.yml')).toBe('/etc/prometheus/alerts.yml');
    expect(mount('prometheus', './otel/prometheus.yml')).toBe('/etc/prometheus/prometheus.yml');
    expect(services.prometheus!.command).toContain('--web.enable-remote-write-receiver');
    expect(mount('grafana', './grafana/provisioning')).toBe('/etc/grafana/provisioning');
    expect(mount('grafana', './grafana/dashboards')).toBe('/var/lib/grafana/dashboards');
  });

  it("compose - Chronicle's environment is a configuration Chronicle accepts, pointing at the stack", () => {
    const env = environmentOf(services.chronicle!);
    const config = loadConfig(env);
    expect(hostOf(config.databaseUrl!)).toBe('postgres');
    expect(hostOf(config.natsUrl!)).toBe('nats');
    expect(config.host).toBe('0.0.0.0');
    expect(config.port).toBe(8700);
    expect(config.export?.url).toBe('http://otel-collector:4318/v1/traces');
    expect(config.resource.serviceName).toBe('chronicle');
    expect(config.links.jaegerUiUrl).toBe('http://localhost:16686');
    expect(config.links.grafanaUrl).toBe('http://localhost:3000');
    expect(config.links.tempoDatasourceUid).toBe('tempo');
    // With other credentials, the URL follows them.
    const custom = loadConfig(
      environmentOf(
        composeServices(compose({ POSTGRES_USER: 'u1', POSTGRES_PASSWORD: 'p1', POSTGRES_DB: 'd1' }))
          .chronicle!,
      ),
    );
    expect(custom.databaseUrl).toBe('postgres://u1:p1@postgres:5432/d1');
  });

  it('compose - the healthcheck of Chronicle probes its /ready on its port', () => {
    const test = (mapAt(services.chronicle, 'healthcheck').test as string[]).join(' ');
    expect(test).toContain(`http://127.0.0.1:${loadConfig(environmentOf(services.chronicle!)).port}/ready`);
  });

  it('compose - the simulator publishes live rounds to NATS every 5 min, every task ended, each verified against Chronicle', () => {
    const command = services.simulator!.command as string[];
    expect(command.slice(0, 3)).toEqual(['node', 'dist/cli/chronicle.js', 'simulate']);
    const flag = (name: string) => {
      expect(command, name).toContain(name);
      return command[command.indexOf(name) + 1];
    };
    expect(flag('--target')).toBe('nats');
    expect(hostOf(flag('--url')!)).toBe('nats');
    expect(hostOf(flag('--api-url')!)).toBe('chronicle');
    expect(portOf(flag('--api-url')!)).toBe(8700);
    // A round every 300 s: 280 s at 10 messages/s (a few more to end its tasks), then its verification.
    expect(flag('--every')).toBe('300');
    expect(flag('--duration')).toBe('280');
    expect(flag('--rate')).toBe('10');
    expect(command).not.toContain('--count');
    expect(command).toContain('--whole-tasks');
    expect(command).toContain('--verify');
    expect(command).toContain('--quiet');
  });

  it('compose - Grafana is provisioned for anonymous viewers, with its admin password from the environment', () => {
    const env = environmentOf(services.grafana!);
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('true');
    expect(env.GF_AUTH_ANONYMOUS_ORG_ROLE).toBe('Viewer');
    expect(mapAt(rawCompose().services, 'grafana').environment).toMatchObject({
      GF_SECURITY_ADMIN_PASSWORD: '${GRAFANA_ADMIN_PASSWORD:-admin}',
    });
    expect(
      environmentOf(composeServices(compose({ GRAFANA_ADMIN_PASSWORD: 's3cret' })).grafana!),
    ).toMatchObject({
      GF_SECURITY_ADMIN_PASSWORD: 's3cret',
    });
  });

  it('compose - Grafana opens on the Swarm overview, a dashboard file it mounts', () => {
    const home = environmentOf(services.grafana!).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    const mount = volumesOf(services.grafana!).find((v) => home?.startsWith(`${v.target}/`));
    expect(mount?.source).toBe('./grafana/dashboards');
    const file = repoPath(`grafana/dashboards/${home!.slice(mount!.target.length + 1)}`);
    expect((JSON.parse(readFileSync(file, 'utf8')) as { uid: string }).uid).toBe('chronicle-swarm-overview');
  });

  it("compose - Postgres creates Grafana's read-only role from the same variables Grafana reads", () => {
    const target = (services.postgres!.configs as { source: string; target: string }[]).find(
      (c) => c.source === 'grafana-reader',
    );
    expect(target?.target).toMatch(/^\/docker-entrypoint-initdb\.d\/.+\.sql$/);
    const sql = String(mapAt(mapAt(compose(), 'configs'), 'grafana-reader').content);
    const grafana = environmentOf(services.grafana!);
    expect(sql).toContain(
      `CREATE ROLE ${grafana.GRAFANA_DB_USER} LOGIN PASSWORD '${grafana.GRAFANA_DB_PASSWORD}'`,
    );
    expect(sql).toContain(`GRANT CONNECT ON DATABASE ${grafana.CHRONICLE_DB_NAME} TO`);
    expect(sql).toContain(`FOR ROLE ${environmentOf(services.postgres!).POSTGRES_USER} IN SCHEMA public`);
    expect(sql).not.toMatch(/\b(INSERT|UPDATE|DELETE|ALL PRIVILEGES)\b/);
  });
});
