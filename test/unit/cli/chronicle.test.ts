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
        /errorRate must be between 0 and 1.*agents must be an integer/,
      ],
      [['simulate', '--start', 'yesterday'], /--start must be RFC 3339 or now/],
      [['simulate', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['simulate', '--every', '0'], /--every must be greater than 0/],
      [['simulate', '--rounds', '2'], /--rounds needs --every/],
      [['simulate', '--every', '5', '--rounds', '1.5'], /--rounds must be a whole number/],
      [['simulate', '--every', '5', '--start', 'now'], /--start cannot be combined with --every/],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(EXIT.usage);
      expect(err, argv.join(' ')).toMatch(message);
    }
  });
});
