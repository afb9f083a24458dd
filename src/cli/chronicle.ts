#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { type Config, loadConfig } from '../config.js';
import { parseTimestamp } from '../events/timestamp.js';
import { ConfigError } from '../pipeline/errors.js';
import { secretScrubber } from '../telemetry/redact.js';
import { backfill } from './export.js';
import { describeFailure } from './failure.js';
import { maintainCommand } from './maintain.js';
import { migrateCommand } from './migrate.js';
import { REPLAY_REJECTS_HELP, replayRejectsArgs } from './replay-rejects-args.js';
import { replayRejectsCommand } from './replay-rejects.js';
import { serve } from './serve.js';
import { SIMULATE_HELP, SimulateUsageError, simulateCommand } from './simulate.js';

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failed: 1, usage: 2, differences: 3 } as const;

const USAGE = `Usage: chronicle <command> [flags]

Commands:
  serve      Run Chronicle (configured by environment variables: see README)
  migrate    Apply pending migrations to DATABASE_URL and exit
  simulate   Publish simulated swarm traffic to NATS or HTTP, and --verify what Chronicle recorded
  export     Re-send the stored spans of a time window to an OTLP endpoint (backfill a new backend)
  replay-rejects  Feed recorded rejects (max_deliver, write_failed) back through ingest; safe to repeat
  maintain   Run one retention and partition maintenance pass now, and print what it did
  help       Show this help, or a command's: chronicle help <command>

Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 simulate --verify found differences.
`;

const HELP: Record<string, string> = {
  simulate: SIMULATE_HELP,
  'replay-rejects': REPLAY_REJECTS_HELP,
  serve: `Usage: chronicle serve

Runs Chronicle until SIGTERM, SIGINT or SIGHUP: the first stops intake, flushes and exits 0; a second
one (more than a second later: npm forwards a Ctrl-C it also received) exits at once with 130. With no
DATABASE_URL, on an embedded PostgreSQL in CHRONICLE_DATA_DIR (default .chronicle); if that server dies,
Chronicle stops and exits 1. Configuration comes from environment variables (README: Configuration).
`,
  migrate: `Usage: chronicle migrate

Creates the database of DATABASE_URL if missing and applies pending migrations. Exit 0 when up to date.
With no DATABASE_URL: the embedded PostgreSQL of CHRONICLE_DATA_DIR (a running serve's, if there is one).
`,
  export: `Usage: chronicle export --since <time> [--until <time>] [--endpoint <url>] [--protocol <p>] [--batch <n>]

Re-sends the stored spans of every trace with an event in [since, until) to an OTLP/HTTP endpoint,
exactly as they were exported (same ids and content). The regular export is not affected. With no
DATABASE_URL: the spans in CHRONICLE_DATA_DIR (a running serve's server, if there is one).

  --since <time>     RFC 3339 or epoch milliseconds (required)
  --until <time>     RFC 3339 or epoch milliseconds (default: now)
  --endpoint <url>   OTLP/HTTP traces URL, e.g. http://tempo:4318/v1/traces
                     (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)
  --protocol <p>     http/json or http/protobuf (default: the configured one, else http/json)
  --batch <n>        spans per request (default 512)
`,
  maintain: `Usage: chronicle maintain [--json]

Runs one maintenance pass now (README: Retention): creates the day partitions of swarm_events ahead,
moves rows of the default partition into theirs, drops days past SWARM_EVENTS_RETENTION_DAYS with their
dedup ledger entries, and trims traces, exported spans, rejects and DLQ entries past their settings.
Prints what it created, dropped and trimmed. Exit 0 when done, 1 when a step failed or another process
was running maintenance. With no DATABASE_URL: the embedded PostgreSQL of a running serve (or of
CHRONICLE_DATA_DIR).

  --json   print the pass's report as one JSON object
`,
};

/** A command line that cannot be run: answered with the message and exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

function time(flag: string, value: string | undefined, fallback?: Date): Date {
  if (value === undefined) {
    if (fallback) return fallback;
    throw new UsageError(`--${flag} is required`);
  }
  const millis = parseTimestamp(/^-?\d+$/.test(value) ? Number(value) : value);
  if (millis === undefined)
    throw new UsageError(`--${flag} must be RFC 3339 or epoch milliseconds, got ${JSON.stringify(value)}`);
  return new Date(millis);
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${flag} must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return Number(value);
}

async function exportCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      since: { type: 'string' },
      until: { type: 'string' },
      endpoint: { type: 'string' },
      protocol: { type: 'string' },
      batch: { type: 'string' },
    },
  });
  const since = time('since', values.since);
  const until = time('until', values.until, new Date());
  if (until <= since) throw new UsageError('--until must be after --since');
  const protocol = values.protocol ?? config.export?.protocol ?? 'http/json';
  if (protocol !== 'http/json' && protocol !== 'http/protobuf') {
    throw new UsageError(`--protocol must be http/json or http/protobuf, got ${JSON.stringify(protocol)}`);
  }
  const url = values.endpoint ?? config.export?.url;
  if (url === undefined) {
    throw new UsageError(
      'no endpoint: pass --endpoint or set OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT',
    );
  }
  if (!/^https?:\/\//.test(url))
    throw new UsageError(`--endpoint must be an http(s) URL, got ${JSON.stringify(url)}`);
  return backfill(config, {
    since,
    until,
    batchSpans: positiveInt('batch', values.batch, 512),
    endpoint: {
      url,
      protocol,
      headers: config.export?.headers ?? {},
      timeoutMillis: config.export?.timeoutMillis ?? 10_000,
      compression: config.export?.compression ?? 'none',
    },
  });
}

/** Runs one command line (without `node chronicle`); resolves to the exit code. */
export async function runCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const topic = command === 'help' ? args[0] : undefined;
    process.stdout.write(topic && HELP[topic] ? HELP[topic] : USAGE);
    return topic && !HELP[topic] ? EXIT.usage : EXIT.ok;
  }
  if (!(command in HELP)) {
    process.stderr.write(`chronicle: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP[command]!);
    return EXIT.ok;
  }
  // Failures are reported with every configured secret masked (telemetry/redact.ts), whatever wrote it.
  let scrub = (text: string): string => text;
  try {
    const config = loadConfig(env);
    scrub = secretScrubber(config.secrets ?? []);
    switch (command) {
      case 'serve':
        parseArgs({ args, strict: true, options: {} });
        return await serve(config);
      case 'migrate':
        parseArgs({ args, strict: true, options: {} });
        return await migrateCommand(config);
      case 'simulate':
        return await simulateCommand(args, config);
      case 'replay-rejects':
        return await replayRejectsCommand(
          config,
          replayRejectsArgs(args, (m) => new UsageError(m)),
        );
      case 'maintain': {
        const { values } = parseArgs({ args, strict: true, options: { json: { type: 'boolean' } } });
        return await maintainCommand(config, { json: values.json ?? false });
      }
      default:
        return await exportCommand(args, config);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chronicle ${command}: ${err.message}\n`);
      return EXIT.usage;
    }
    const code = (err as { code?: unknown }).code;
    if (
      err instanceof UsageError ||
      err instanceof SimulateUsageError ||
      (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
    ) {
      process.stderr.write(scrub(`chronicle ${command}: ${(err as Error).message}\n\n${HELP[command]}`));
      return EXIT.usage;
    }
    // Anything else is a failure to report, not a crash: one line (and its causes), no stack trace.
    process.stderr.write(scrub(`chronicle ${command}: ${describeFailure(err)}\n`));
    return EXIT.failed;
  }
}

// Run when executed (the `chronicle` bin, possibly through a symlink), not when imported.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = await runCli(process.argv.slice(2));
}
