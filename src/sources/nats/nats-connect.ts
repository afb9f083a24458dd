import { readFileSync } from 'node:fs';
import {
  type Authenticator,
  type ConnectionOptions,
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from 'nats';

/** How Chronicle proves who it is to NATS (src/sources/nats/config.ts reads it from the environment). */
export type NatsAuth =
  | { kind: 'user'; user: string; password?: string }
  | { kind: 'token'; token: string }
  | { kind: 'nkey'; seed: string }
  /** A file holding the seed: read at each connect, so a rotated seed is picked up. */
  | { kind: 'nkey-file'; path: string }
  /** A credentials file (user JWT and seed): read at each connect. */
  | { kind: 'creds'; path: string };

/** TLS towards NATS: the CA to verify the server with, and a client certificate. Paths to PEM files. */
export interface NatsTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Where and how to connect: a URL without credentials, and the credentials and TLS apart. */
export interface NatsConnectionSettings {
  /** Holds no credentials: safe to log and serve. */
  url: string;
  auth?: NatsAuth;
  tls?: NatsTls;
}

function authenticator(auth: NatsAuth): Authenticator {
  switch (auth.kind) {
    case 'user':
      return usernamePasswordAuthenticator(auth.user, auth.password);
    case 'token':
      return tokenAuthenticator(auth.token);
    case 'nkey':
      return nkeyAuthenticator(new TextEncoder().encode(auth.seed));
    case 'nkey-file':
      return nkeyAuthenticator(() => new TextEncoder().encode(readFileSync(auth.path, 'utf8').trim()));
    case 'creds':
      return credsAuthenticator(() => new Uint8Array(readFileSync(auth.path)));
  }
}

/**
 * The nats.js connect options for `settings`: servers, authenticator and tls. A tls:// URL asks for TLS
 * verified against the system's CAs when no NATS_CA is given.
 */
export function natsConnectOptions(settings: NatsConnectionSettings): ConnectionOptions {
  const tls = settings.tls ?? (settings.url.startsWith('tls://') ? {} : undefined);
  return {
    servers: settings.url,
    ...(settings.auth === undefined ? {} : { authenticator: authenticator(settings.auth) }),
    ...(tls === undefined ? {} : { tls }),
  };
}
