import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT, runCli } from '../../../src/cli/chronicle.js';

/** Runs the CLI with stdout and stderr captured. */
async function run(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  const code = await runCli(argv, env);
  vi.restoreAllMocks();
  return { code, out, err };
}

afterEach(() => vi.restoreAllMocks());

describe('chronicle CLI - usage', () => {
  it('no command, help and --help print the commands and exit 0', async () => {
    for (const argv of [[], ['help'], ['--help']]) {
      const { code, out } = await run(argv);
      expect(code).toBe(EXIT.ok);
      expect(out).toMatch(/serve[\s\S]*migrate[\s\S]*export/);
    }
  });

  it('help <command> and <command> --help print that command', async () => {
    expect((await run(['help', 'export'])).out).toContain('--since <time>');
    expect((await run(['export', '--help'])).out).toContain('--endpoint <url>');
    expect((await run(['help', 'nope'])).code).toBe(EXIT.usage);
  });

  it('an unknown command exits 2 naming it', async () => {
    const { code, err } = await run(['serv']);
    expect(code).toBe(EXIT.usage);
    expect(err).toContain('unknown command "serv"');
  });

  it('an unknown flag exits 2 naming it, with the command help', async () => {
    const { code, err } = await run(['migrate', '--force']);
    expect(code).toBe(EXIT.usage);
    expect(err).toContain("Unknown option '--force'");
    expect(err).toContain('Usage: chronicle migrate');
  });

  it('an invalid configuration exits 2 listing every problem', async () => {
    const { code, err } = await run(['migrate'], { CHRONICLE_PORT: 'x', LOG_LEVEL: 'loud' });
    expect(code).toBe(EXIT.usage);
    expect(err).toMatch(/CHRONICLE_PORT[\s\S]*LOG_LEVEL/);
  });

  it('bad API tokens stop serve with exit 2, naming the entry and never the token', async () => {
    const { code, err } = await run(['serve'], {
      CHRONICLE_API_TOKENS: 'grafana:read:t0ken-one,grafana:metrics:t0ken-two,ops:sw4pped:admin',
    });
    expect(code).toBe(EXIT.usage);
    expect(err).toContain('CHRONICLE_API_TOKENS entry 2: the name grafana is already used by');
    expect(err).toContain('CHRONICLE_API_TOKENS entry 3 (ops) has an unknown scope');
    for (const secret of ['t0ken-one', 't0ken-two', 'sw4pped']) expect(err).not.toContain(secret);
  });

  it('export: missing or bad flags exit 2 with a clear message', async () => {
    const cases: [string[], RegExp][] = [
      [['export'], /--since is required/],
      [['export', '--since', 'yesterday'], /--since must be RFC 3339 or epoch milliseconds/],
      [
        ['export', '--since', '2026-03-02T00:00:00Z', '--until', '2026-03-01T00:00:00Z'],
        /--until must be after --since/,
      ],
      [['export', '--since', '2026-03-01T00:00:00Z'], /no endpoint/],
      [['export', '--since', '2026-03-01T00:00:00Z', '--endpoint', 'tempo:4318'], /must be an http\(s\) URL/],
      [
        ['export', '--since', '0', '--endpoint', 'http://t/v1/traces', '--protocol', 'grpc'],
        /--protocol must be/,
      ],
      [
        ['export', '--since', '0', '--endpoint', 'http://t/v1/traces', '--batch', '0'],
        /--batch must be a whole number/,
      ],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT.usage);
      expect(err, argv.join(' ')).toMatch(message);
    }
  });

  it('simulate: bad flags exit 2 naming every problem', async () => {
    const cases: [string[], RegExp][] = [
      [['simulate', '--target', 'kafka'], /--target must be nats or http/],
      [['simulate', '--rate', 'fast'], /--rate must be a number/],
      [
        ['simulate', '--error-rate', '2', '--agents', '0'],
        /--error-rate must be between 0 and 1.*--agents must be an integer/,
      ],
      [['simulate', '--start', 'yesterday'], /--start must be RFC 3339 or now/],
      [['simulate', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['simulate', '--every', '0', '--verify'], /--every must be greater than 0/],
      [['simulate', '--rounds', '2'], /--rounds needs --every/],
      [['simulate', '--every', '5', '--verify', '--rounds', '1.5'], /--rounds must be a whole number/],
      [['simulate', '--every', '5', '--verify', '--start', 'now'], /--start cannot be combined with --every/],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT.usage);
      expect(err, argv.join(' ')).toMatch(message);
    }
  });

  it('simulate: option problems name the flags, never the internal option names', async () => {
    const cases: [string[], string][] = [
      [['simulate', '--duration', '5'], '--duration needs --rate'],
      [['simulate', '--count', '0'], '--count must be a positive whole number'],
      [['simulate', '--count', '2.5'], '--count must be a positive whole number'],
      [
        ['simulate', '--count', '10', '--duration', '5', '--rate', '2'],
        'give --count or --duration, not both',
      ],
      [['simulate', '--duration=-1', '--rate', '2'], '--duration must be greater than 0'],
      [['simulate', '--rate', '0'], '--rate must be greater than 0'],
      [['simulate', '--seed', '1.5'], '--seed must be an integer'],
      [['simulate', '--timeout-rate=-0.1'], '--timeout-rate must be between 0 and 1'],
      [['simulate', '--out-of-order-rate', '7'], '--out-of-order-rate must be between 0 and 1'],
      [['simulate', '--verify', '--verify-timeout', '0'], '--verify-timeout must be greater than 0'],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT.usage);
      const first = err.split('\n')[0]!;
      expect(first, argv.join(' ')).toBe(`chronicle simulate: ${message}`);
      expect(first, argv.join(' ')).not.toMatch(
        /errorRate|durationSeconds|ratePerSecond|count must be a positive integer|startTimeMillis/,
      );
    }
  });

  it('simulate: a flag that is not a number is reported once, not again as missing', async () => {
    const { code, err } = await run(['simulate', '--count', 'many']);
    expect(code).toBe(EXIT.usage);
    expect(err.split('\n')[0]).toBe('chronicle simulate: --count must be a number, got "many"');
  });

  it('simulate: bad addresses are usage errors before anything is sent', async () => {
    const cases: [string[], RegExp][] = [
      [['simulate', '--url', 'localhost:8700'], /--url must be an http\(s\) URL/],
      [['simulate', '--url', 'nats://127.0.0.1:4222'], /--url must be an http\(s\) URL/],
      [['simulate', '--url', 'http://'], /--url must be an http\(s\) URL/],
      [['simulate', '--target', 'nats', '--url', 'http://127.0.0.1:4222'], /--url must be a NATS server/],
      [['simulate', '--target', 'nats', '--url', 'nats://h:99999'], /--url must be a NATS server/],
      [['simulate', '--target', 'nats'], /--target nats needs --url or NATS_URL/],
      [['simulate', '--verify', '--api-url', 'ftp://chronicle'], /--api-url must be an http\(s\) URL/],
      [['simulate', '--api-url', 'http://chronicle:8700'], /--api-url needs --verify/],
      [['simulate', '--subject-prefix', 'x_'], /--subject-prefix is for --target nats/],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT.usage);
      expect(err, argv.join(' ')).toMatch(message);
    }
  });

  it('simulate: --every needs --verify', async () => {
    const { code, err } = await run(['simulate', '--every', '5', '--rounds', '2']);
    expect(code).toBe(EXIT.usage);
    expect(err).toMatch(/--every needs --verify/);
  });
});
