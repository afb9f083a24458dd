import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { authOptions } from '../../../../src/api/auth/config.js';
import { isLoopbackHost } from '../../../../src/api/auth/loopback.js';
import { findClient, sha256 } from '../../../../src/api/auth/tokens.js';
import { loadConfig } from '../../../../src/config.js';
import { ConfigError } from '../../../../src/pipeline/errors.js';

const BASE = { DATABASE_URL: 'postgres://localhost/chronicle' };

function tokensFile(content: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'chronicle-tokens-')), 'tokens');
  writeFileSync(file, content);
  return file;
}

/** The problems loadConfig reports for this environment (none: []). */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...BASE, ...env });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return [...err.problems];
  }
}

describe('api tokens', () => {
  it('api tokens - entries separated by commas, spaces or newlines give named clients with their scopes', () => {
    const { auth, problems } = authOptions({
      CHRONICLE_API_TOKENS: 'dispatcher:ingest:s3cr3t,grafana:read+metrics:t0ken\n ops:admin+read:a:b:c  ',
    });
    expect(problems).toEqual([]);
    expect(auth?.clients.map((c) => [c.name, [...c.scopes]])).toEqual([
      ['dispatcher', ['ingest']],
      ['grafana', ['read', 'metrics']],
      ['ops', ['admin', 'read']],
    ]);
    // Only the SHA-256 is kept; a token may hold colons (everything after the second one).
    expect(auth?.clients[2]?.tokenSha256).toEqual(sha256('a:b:c'));
    expect(JSON.stringify(auth)).not.toContain('s3cr3t');
  });

  it('api tokens - a file holds one entry per line; # starts a comment; both sources add up', () => {
    const file = tokensFile(
      '# the clients\n\ndispatcher:ingest:s3cr3t   # the dispatcher\n  grafana:read:t0ken\n',
    );
    const { auth, problems } = authOptions({
      CHRONICLE_API_TOKENS_FILE: file,
      CHRONICLE_API_TOKENS: 'prom:metrics:pr0m',
    });
    expect(problems).toEqual([]);
    expect(auth?.clients.map((c) => c.name)).toEqual(['prom', 'dispatcher', 'grafana']);
  });

  it('api tokens - every bad entry is named by its place, never by its token', () => {
    const secrets = ['s3cr3t', 'justatoken', 't0ken', 'sw4pped', 'dupl1cate', 'tw1ce'];
    const problems = problemsOf({
      CHRONICLE_API_TOKENS: [
        'dispatcher:ingest:s3cr3t',
        'justatoken', // entry 2: no colons
        'grafana:t0ken', // entry 3: no scope part
        'ops:read:', // entry 4: empty token
        'bad name!:read:x1', // split at the space: entries 5 and 6
        'swapped:sw4pped:read', // entry 7: NAME:TOKEN:SCOPE, an unknown scope
        'dispatcher:read:dupl1cate', // entry 8: duplicate name
        'other:read:s3cr3t', // entry 9: a token used twice
      ].join(','),
      CHRONICLE_API_TOKENS_FILE: tokensFile('# ok\nreader:read:tw1ce\nreader2:read:tw1ce\nnocolons-tw1ce\n'),
    });
    expect(problems).toEqual([
      'CHRONICLE_API_TOKENS entry 2 is not NAME:SCOPE[+SCOPE…]:TOKEN (a name of letters, digits, _ . -, scopes from ingest, read, admin, metrics, a token without whitespace)',
      expect.stringMatching(/^CHRONICLE_API_TOKENS entry 3 is not NAME:SCOPE/),
      expect.stringMatching(/^CHRONICLE_API_TOKENS entry 4 is not NAME:SCOPE/),
      expect.stringMatching(/^CHRONICLE_API_TOKENS entry 5 is not NAME:SCOPE/),
      expect.stringMatching(/^CHRONICLE_API_TOKENS entry 6 is not NAME:SCOPE/),
      'CHRONICLE_API_TOKENS entry 7 (swapped) has an unknown scope: scopes are ingest, read, admin, metrics',
      'CHRONICLE_API_TOKENS entry 8: the name dispatcher is already used by CHRONICLE_API_TOKENS entry 1',
      'CHRONICLE_API_TOKENS entry 9 (other) has the same token as CHRONICLE_API_TOKENS entry 1: give each client its own',
      'tokens file line 3 (reader2) has the same token as tokens file line 2: give each client its own',
      expect.stringMatching(/^tokens file line 4 is not NAME:SCOPE/),
    ]);
    for (const secret of secrets) expect(problems.join('\n')).not.toContain(secret);
  });

  it('api tokens - an unreadable file, or variables holding no entry, stop the start', () => {
    expect(problemsOf({ CHRONICLE_API_TOKENS_FILE: '/nonexistent/tokens' })).toEqual([
      'CHRONICLE_API_TOKENS_FILE: cannot read /nonexistent/tokens (ENOENT)',
    ]);
    expect(problemsOf({ CHRONICLE_API_TOKENS: ' , ,' })).toEqual([
      'CHRONICLE_API_TOKENS: holds no token entry; unset it to run without access control',
    ]);
    expect(problemsOf({ CHRONICLE_API_TOKENS_FILE: tokensFile('# nobody yet\n') })).toEqual([
      'CHRONICLE_API_TOKENS_FILE: holds no token entry; unset it to run without access control',
    ]);
    // Listed with the other variables' problems, all at once.
    expect(problemsOf({ CHRONICLE_PORT: 'x', CHRONICLE_API_TOKENS: 'oops' })).toEqual([
      'CHRONICLE_PORT: must be a whole number',
      expect.stringMatching(/^CHRONICLE_API_TOKENS entry 1 is not/),
    ]);
  });

  it('api tokens - unset or empty: no access control; set: the configuration holds the clients', () => {
    expect(loadConfig(BASE).auth).toBeUndefined();
    expect(loadConfig({ ...BASE, CHRONICLE_API_TOKENS: '  ' }).auth).toBeUndefined();
    const auth = loadConfig({ ...BASE, CHRONICLE_API_TOKENS: 'grafana:read:t0ken' }).auth;
    expect(auth?.clients.map((c) => c.name)).toEqual(['grafana']);
  });

  it('api tokens - a presented token finds its client by hash, and nothing else does', () => {
    const { auth } = authOptions({ CHRONICLE_API_TOKENS: 'a:read:alpha-token b:ingest:beta-token' });
    const clients = auth!.clients;
    expect(findClient(clients, 'alpha-token')?.name).toBe('a');
    expect(findClient(clients, 'beta-token')?.name).toBe('b');
    for (const wrong of ['', 'alpha', 'alpha-token ', 'ALPHA-TOKEN', 'alpha-tokenx']) {
      expect(findClient(clients, wrong)).toBeUndefined();
    }
  });

  it('loopback - 127.0.0.0/8, ::1 and localhost only', () => {
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      'localhost',
      'LOCALHOST',
      '0:0:0:0:0:0:0:1',
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'chronicle.internal', '128.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});
