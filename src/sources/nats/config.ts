import { accessSync, constants, readFileSync } from 'node:fs';
import { nkeys } from 'nats';
import { z } from 'zod';
import type { EnvOf } from '../../pipeline/env.js';
import type { NatsAuth, NatsConnectionSettings } from './nats-connect.js';

/**
 * The configuration slice of the NATS connection's credentials and TLS: its variables (composed into the
 * schema of src/config.ts, the only reader of process.env) and the settings they give. The names are
 * those of the `nats` CLI (NATS_USER, NATS_PASSWORD, NATS_CREDS, NATS_NKEY, NATS_CA, NATS_CERT,
 * NATS_KEY), plus NATS_TOKEN and NATS_NKEY_SEED for secrets handed over in the environment. NATS_URL may
 * carry them too (nats://user:password@host, nats://token@host): they are taken out of the URL, so the
 * URL Chronicle logs and serves never holds them. Problems name variables and paths, never values.
 */

const text = z.string().min(1);

/** The variables of the slice. */
export const NATS_CONNECTION_ENV = {
  NATS_USER: text.optional(),
  NATS_PASSWORD: text.optional(),
  NATS_TOKEN: text.optional(),
  /** A file holding an NKey seed (SU…), as `nats --nkey`. */
  NATS_NKEY: text.optional(),
  /** The NKey seed itself. */
  NATS_NKEY_SEED: text.optional(),
  /** A credentials file (user JWT and NKey seed), as `nats --creds`. */
  NATS_CREDS: text.optional(),
  /** CA certificate(s) (PEM) to verify the server with, instead of the system's. */
  NATS_CA: text.optional(),
  /** Client certificate and its key (PEM), for servers that verify clients. */
  NATS_CERT: text.optional(),
  NATS_KEY: text.optional(),
};

/** The slice's variables once parsed. */
export type NatsConnectionEnv = Partial<EnvOf<typeof NATS_CONNECTION_ENV>>;

type Variable = keyof NatsConnectionEnv | 'NATS_URL';

export interface UrlCredentials {
  /** The URL without its user information. */
  url: string;
  user?: string;
  password?: string;
}

/** Takes user:password (or a lone token) out of a NATS URL; the URL comes back without them. */
export function splitNatsUrl(value: string): UrlCredentials {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return { url: value };
  }
  if (parsed.username === '' && parsed.password === '') return { url: value };
  const user = decoded(parsed.username);
  const password = parsed.password === '' ? undefined : decoded(parsed.password);
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.toString().replace(/\/$/, ''), user, ...(password === undefined ? {} : { password }) };
}

/** Percent-decoded, or as written when it is not valid percent-encoding. */
export function decoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

// The `nkeys` export of nats is untyped: the one function used here, typed.
const nkeySeed = nkeys as { fromSeed(seed: Uint8Array): { getPublicKey(): string } };

/** Whether `seed` is a user NKey seed (without saying anything about its value). */
export function isUserSeed(seed: string): boolean {
  try {
    return nkeySeed.fromSeed(new TextEncoder().encode(seed.trim())).getPublicKey().startsWith('U');
  } catch {
    return false;
  }
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The authentication methods set, each with the variables that set it. */
function methods(e: NatsConnectionEnv, fromUrl: UrlCredentials): { name: string; variables: Variable[] }[] {
  const found: { name: string; variables: Variable[] }[] = [];
  if (fromUrl.user !== undefined) {
    found.push({
      name: fromUrl.password === undefined ? 'token' : 'user and password',
      variables: ['NATS_URL'],
    });
  }
  if (e.NATS_USER !== undefined || e.NATS_PASSWORD !== undefined) {
    found.push({
      name: 'user and password',
      variables: (['NATS_USER', 'NATS_PASSWORD'] as const).filter((v) => e[v] !== undefined),
    });
  }
  if (e.NATS_TOKEN !== undefined) found.push({ name: 'token', variables: ['NATS_TOKEN'] });
  if (e.NATS_NKEY !== undefined || e.NATS_NKEY_SEED !== undefined) {
    found.push({
      name: 'NKey',
      variables: (['NATS_NKEY', 'NATS_NKEY_SEED'] as const).filter((v) => e[v] !== undefined),
    });
  }
  if (e.NATS_CREDS !== undefined) found.push({ name: 'credentials file', variables: ['NATS_CREDS'] });
  return found;
}

/** Problems that involve several variables, or files: the variable to name, and what is wrong. */
export function natsConnectionProblems(
  e: NatsConnectionEnv,
  natsUrl: string | undefined,
): { variable: Variable; message: string }[] {
  const problems: { variable: Variable; message: string }[] = [];
  const fromUrl = natsUrl === undefined ? { url: '' } : splitNatsUrl(natsUrl);
  const set = methods(e, fromUrl);
  if (natsUrl === undefined) {
    const any = [
      ...set.flatMap((m) => m.variables),
      ...(['NATS_CA', 'NATS_CERT', 'NATS_KEY'] as const),
    ].filter((v) => v !== 'NATS_URL' && e[v] !== undefined);
    if (any.length > 0)
      problems.push({ variable: any[0] as Variable, message: `${any.join(', ')} set but NATS_URL is not` });
    return problems;
  }
  if (set.length > 1) {
    problems.push({
      variable: set[1]?.variables[0] ?? 'NATS_URL',
      message: `set one way to authenticate to NATS, not ${set.length}: ${set.map((m) => `${m.name} (${m.variables.join(', ')})`).join(', ')}`,
    });
  }
  if (e.NATS_PASSWORD !== undefined && e.NATS_USER === undefined) {
    problems.push({ variable: 'NATS_PASSWORD', message: 'needs NATS_USER' });
  }
  if (e.NATS_NKEY !== undefined && e.NATS_NKEY_SEED !== undefined) {
    problems.push({
      variable: 'NATS_NKEY_SEED',
      message: 'set NATS_NKEY (a seed file) or NATS_NKEY_SEED, not both',
    });
  }
  if (e.NATS_CERT !== undefined && e.NATS_KEY === undefined) {
    problems.push({
      variable: 'NATS_KEY',
      message: 'needed with NATS_CERT (the client certificate needs its key)',
    });
  }
  if (e.NATS_KEY !== undefined && e.NATS_CERT === undefined) {
    problems.push({
      variable: 'NATS_CERT',
      message: 'needed with NATS_KEY (the key needs its client certificate)',
    });
  }
  for (const variable of ['NATS_NKEY', 'NATS_CREDS', 'NATS_CA', 'NATS_CERT', 'NATS_KEY'] as const) {
    const path = e[variable];
    if (path !== undefined && !readable(path)) {
      problems.push({ variable, message: `cannot read ${path}` });
    }
  }
  if (e.NATS_NKEY_SEED !== undefined && !isUserSeed(e.NATS_NKEY_SEED)) {
    problems.push({ variable: 'NATS_NKEY_SEED', message: 'is not a user NKey seed (SU…)' });
  }
  if (e.NATS_NKEY !== undefined && readable(e.NATS_NKEY) && !isUserSeed(readFileSync(e.NATS_NKEY, 'utf8'))) {
    problems.push({ variable: 'NATS_NKEY', message: `${e.NATS_NKEY} does not hold a user NKey seed (SU…)` });
  }
  return problems;
}

/** The connection settings of a valid configuration (natsConnectionProblems found nothing). */
export function natsConnectionSettings(e: NatsConnectionEnv, natsUrl: string): NatsConnectionSettings {
  const fromUrl = splitNatsUrl(natsUrl);
  let auth: NatsAuth | undefined;
  if (fromUrl.user !== undefined) {
    auth =
      fromUrl.password === undefined
        ? { kind: 'token', token: fromUrl.user }
        : { kind: 'user', user: fromUrl.user, password: fromUrl.password };
  } else if (e.NATS_USER !== undefined) {
    auth = {
      kind: 'user',
      user: e.NATS_USER,
      ...(e.NATS_PASSWORD === undefined ? {} : { password: e.NATS_PASSWORD }),
    };
  } else if (e.NATS_TOKEN !== undefined) {
    auth = { kind: 'token', token: e.NATS_TOKEN };
  } else if (e.NATS_NKEY_SEED !== undefined) {
    auth = { kind: 'nkey', seed: e.NATS_NKEY_SEED.trim() };
  } else if (e.NATS_NKEY !== undefined) {
    auth = { kind: 'nkey-file', path: e.NATS_NKEY };
  } else if (e.NATS_CREDS !== undefined) {
    auth = { kind: 'creds', path: e.NATS_CREDS };
  }
  const tls =
    e.NATS_CA !== undefined || e.NATS_CERT !== undefined
      ? {
          ...(e.NATS_CA === undefined ? {} : { caFile: e.NATS_CA }),
          ...(e.NATS_CERT === undefined ? {} : { certFile: e.NATS_CERT }),
          ...(e.NATS_KEY === undefined ? {} : { keyFile: e.NATS_KEY }),
        }
      : undefined;
  return {
    url: fromUrl.url,
    ...(auth === undefined ? {} : { auth }),
    ...(tls === undefined ? {} : { tls }),
  };
}
