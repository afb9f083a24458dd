import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../src/config.js';
import { ConfigError } from '../../../../src/pipeline/errors.js';
import { natsConnectOptions } from '../../../../src/sources/nats/nats-connect.js';

const userSeed = (): string =>
  new TextDecoder().decode((nkeys as { createUser(): { getSeed(): Uint8Array } }).createUser().getSeed());

function problems(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('loadConfig accepted the environment');
}

const dir = mkdtempSync(join(tmpdir(), 'chronicle-nats-config-'));
const pem = join(dir, 'ca.pem');
writeFileSync(pem, '-----BEGIN CERTIFICATE-----\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NATS connection config', () => {
  it('user and password from NATS_URL are taken out of the URL', () => {
    const config = loadConfig({ NATS_URL: 'nats://alice:s3cr%40t-pw@127.0.0.1:4222' });
    expect(config.natsUrl).toBe('nats://127.0.0.1:4222');
    expect(config.natsConnection).toEqual({ auth: { kind: 'user', user: 'alice', password: 's3cr@t-pw' } });
    expect(config.secrets).toContain('s3cr@t-pw');
  });

  it('a lone user in NATS_URL is a token', () => {
    const config = loadConfig({ NATS_URL: 'tls://tok-123456@nats.internal:4443' });
    expect(config.natsUrl).toBe('tls://nats.internal:4443');
    expect(config.natsConnection).toEqual({ auth: { kind: 'token', token: 'tok-123456' } });
  });

  it('each variable gives its method, and TLS its files', () => {
    const seed = userSeed();
    expect(loadConfig({ NATS_URL: 'nats://h:4222', NATS_TOKEN: 'tok-abcdef' }).natsConnection).toEqual({
      auth: { kind: 'token', token: 'tok-abcdef' },
    });
    expect(
      loadConfig({
        NATS_URL: 'nats://h:4222',
        NATS_NKEY_SEED: seed,
        NATS_CA: pem,
        NATS_CERT: pem,
        NATS_KEY: pem,
      }).natsConnection,
    ).toEqual({ auth: { kind: 'nkey', seed }, tls: { caFile: pem, certFile: pem, keyFile: pem } });
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `${seed}\n`);
    expect(loadConfig({ NATS_URL: 'nats://h:4222', NATS_NKEY: seedFile }).natsConnection).toEqual({
      auth: { kind: 'nkey-file', path: seedFile },
    });
    expect(loadConfig({ NATS_URL: 'nats://h:4222', NATS_CREDS: pem }).natsConnection).toEqual({
      auth: { kind: 'creds', path: pem },
    });
  });

  it('two ways to authenticate are refused, naming the variables and never the values', () => {
    const message = problems({
      NATS_URL: 'nats://bob:pw-in-url-123@h:4222',
      NATS_TOKEN: 'tok-secret-456',
      NATS_USER: 'carol',
      NATS_PASSWORD: 'pw-secret-789',
    });
    expect(message).toMatch(/one way to authenticate to NATS/);
    expect(message).toContain('NATS_URL');
    expect(message).toContain('NATS_TOKEN');
    expect(message).toContain('NATS_USER, NATS_PASSWORD');
    for (const secret of ['pw-in-url-123', 'tok-secret-456', 'pw-secret-789'])
      expect(message).not.toContain(secret);
  });

  it('unreadable files are named by path; a bad seed is refused without echoing it', () => {
    const missing = join(dir, 'nope.pem');
    const message = problems({
      NATS_URL: 'nats://h:4222',
      NATS_CA: missing,
      NATS_NKEY_SEED: 'SUAnotaseed-secret-value',
    });
    expect(message).toContain(`NATS_CA: cannot read ${missing}`);
    expect(message).toContain('NATS_NKEY_SEED: is not a user NKey seed');
    expect(message).not.toContain('notaseed-secret-value');
  });

  it('half a client certificate, a password without a user, or credentials without NATS_URL are refused', () => {
    expect(problems({ NATS_URL: 'nats://h:4222', NATS_CERT: pem })).toContain(
      'NATS_KEY: needed with NATS_CERT',
    );
    expect(problems({ NATS_URL: 'nats://h:4222', NATS_PASSWORD: 'pw-123456' })).toContain(
      'NATS_PASSWORD: needs NATS_USER',
    );
    expect(problems({ NATS_TOKEN: 'tok-123456' })).toContain('NATS_TOKEN set but NATS_URL is not');
  });
});

describe('NATS connect options', () => {
  it('a tls:// URL asks for TLS even without NATS_CA; credentials become an authenticator', () => {
    expect(natsConnectOptions({ url: 'tls://nats:4443' })).toEqual({ servers: 'tls://nats:4443', tls: {} });
    expect(natsConnectOptions({ url: 'nats://nats:4222' })).toEqual({ servers: 'nats://nats:4222' });
    const options = natsConnectOptions({
      url: 'nats://nats:4222',
      auth: { kind: 'token', token: 'tok-123456' },
      tls: { caFile: pem },
    });
    expect(options.tls).toEqual({ caFile: pem });
    expect(typeof options.authenticator).toBe('function');
  });

  it('a password that is not valid percent-encoding is taken as written', () => {
    const config = loadConfig({ NATS_URL: 'nats://alice:100%zz@127.0.0.1:4222' });
    expect(config.natsConnection).toEqual({ auth: { kind: 'user', user: 'alice', password: '100%zz' } });
  });
});
