/**
 * The full stack's files as the tests read them: docker-compose.yml with Compose's variable
 * interpolation, the otel/ configs, Grafana's provisioning.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../../support/build.js';

/** A path of the repository, from its root. */
export function repoPath(relative: string): string {
  return path.join(ROOT, relative);
}

/** Parses a YAML file of the repository; fails on any YAML error or warning (duplicate keys included). */
export function readYaml(relative: string): unknown {
  return parse(readFileSync(repoPath(relative), 'utf8'), {
    strict: true,
    uniqueKeys: true,
    prettyErrors: true,
  });
}

export type YamlMap = Record<string, unknown>;

export function isMap(value: unknown): value is YamlMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The map at `key` of `parent`; throws naming the key when it is not a map. */
export function mapAt(parent: unknown, key: string): YamlMap {
  const value = isMap(parent) ? parent[key] : undefined;
  if (!isMap(value)) throw new Error(`${key} is not a map`);
  return value;
}

/**
 * Compose's interpolation of one string: `$$` is a literal `$`; `${VAR}`, `$VAR`, `${VAR:-default}`
 * (unset or empty), `${VAR-default}` (unset). Anything else Compose accepts (`:?`, `:+`, …) is refused
 * here, so a test notices a form it does not model.
 */
export function interpolate(value: string, env: Readonly<Record<string, string | undefined>>): string {
  return value.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|(\{[^}]*\}?))/g,
    (
      whole,
      dollar?: string,
      braced?: string,
      op?: string,
      fallback?: string,
      bare?: string,
      other?: string,
    ) => {
      if (dollar) return '$';
      if (other !== undefined)
        throw new Error(`unsupported interpolation ${whole} in ${JSON.stringify(value)}`);
      const name = (braced ?? bare)!;
      const current = env[name];
      if (op === ':-') return current === undefined || current === '' ? fallback! : current;
      if (op === '-') return current === undefined ? fallback! : current;
      return current ?? '';
    },
  );
}

/** Every string value of a parsed document interpolated (keys are not, as in Compose). */
export function interpolateAll(value: unknown, env: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((v) => interpolateAll(v, env));
  if (isMap(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env)]));
  return value;
}

/** docker-compose.yml as written (before interpolation). */
export function rawCompose(): YamlMap {
  const doc = readYaml('docker-compose.yml');
  if (!isMap(doc)) throw new Error('docker-compose.yml is not a map');
  return doc;
}

/** docker-compose.yml as Compose sees it with no variable set: every default applied. */
export function compose(env: Readonly<Record<string, string | undefined>> = {}): YamlMap {
  return interpolateAll(rawCompose(), env) as YamlMap;
}

export function composeServices(doc: YamlMap = compose()): Record<string, YamlMap> {
  return mapAt(doc, 'services') as Record<string, YamlMap>;
}

/** A compose environment (map or KEY=VALUE list) as a map. */
export function environmentOf(service: YamlMap): Record<string, string> {
  const env = service.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((item) => {
        const s = String(item);
        const eq = s.indexOf('=');
        return eq < 0 ? [s, ''] : [s.slice(0, eq), s.slice(eq + 1)];
      }),
    );
  }
  if (!isMap(env)) throw new Error('environment is neither a map nor a list');
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => {
      if (v === null) return [k, ''];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return [k, String(v)];
      throw new Error(`environment ${k} is not a scalar`);
    }),
  );
}

/** A service's volumes in the short syntax, split into source, target and mode. */
export function volumesOf(service: YamlMap): { source: string; target: string; mode: string | undefined }[] {
  const volumes = service.volumes;
  if (volumes === undefined) return [];
  if (!Array.isArray(volumes)) throw new Error('volumes is not a list');
  return volumes.map((v) => {
    if (typeof v !== 'string')
      throw new Error(`only the short volume syntax is modelled, got ${JSON.stringify(v)}`);
    const [source, target, mode] = v.split(':');
    if (!source || !target) throw new Error(`volume ${v} has no source or target`);
    return { source, target, mode };
  });
}

/** The host of `host:port`, `scheme://host:port/path` or `[::1]:port`. */
export function hostOf(endpoint: string): string {
  const url = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return url.hostname;
}

/** The port of `host:port` or a URL (the scheme's default when it has none). */
export function portOf(endpoint: string): number {
  const url = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  if (url.port !== '') return Number(url.port);
  if (url.protocol === 'http:') return 80;
  if (url.protocol === 'https:') return 443;
  throw new Error(`no port in ${endpoint}`);
}
