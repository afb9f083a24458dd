import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/telemetry/logger.js';
import { redactUrl, secretScrubber } from '../../../src/telemetry/redact.js';

describe('redact', () => {
  it('redactUrl - masks passwords, NATS tokens and password parameters, keeps the rest', () => {
    expect(redactUrl('postgres://chronicle:hunter2@db:5432/chronicle?sslmode=verify-full')).toBe(
      'postgres://chronicle:***@db:5432/chronicle?sslmode=verify-full',
    );
    expect(redactUrl('nats://tok-abc@nats:4222')).toBe('nats://***@nats:4222');
    expect(redactUrl('nats://nats:4222')).toBe('nats://nats:4222');
    expect(redactUrl('postgres://db/x?password=hunter2&sslmode=require')).toBe(
      'postgres://db/x?password=***&sslmode=require',
    );
    expect(redactUrl('https://u:p%40ss@otel:4318/v1/traces')).toBe('https://u:***@otel:4318/v1/traces');
    expect(redactUrl('not a url with user:pw@host')).toBe('***');
  });

  it('secretScrubber - masks a secret as is, percent-encoded and JSON-escaped', () => {
    const scrub = secretScrubber(['p@ss"word', 'ab']);
    expect(scrub('a p@ss"word b p%40ss%22word c p@ss\\"word ab')).toBe('a *** b *** c *** ab');
  });

  it('logger - a secret in any field of any line is masked', () => {
    let written = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        written += chunk.toString();
        done();
      },
    });
    const logger = createLogger(
      { level: 'trace', secrets: ['tok-secret-1'] },
      { write: (s) => sink.write(s) },
    );
    logger.trace({ err: new Error('refused tok-secret-1') }, 'connecting with tok-secret-1');
    expect(written).toContain('refused ***');
    expect(written).not.toContain('tok-secret-1');
  });
});
