import { parseArgs } from 'node:util';
import { parseTimestamp } from '../events/timestamp.js';
import type { Origin } from '../pipeline/contracts.js';
import { DEFAULT_REPLAY_REASONS, type ReplayOptions } from './replay-rejects.js';

export const REPLAY_REJECTS_HELP = `Usage: chronicle replay-rejects [--reason <r>]... [--origin nats|http|otlp] [--since <time>] [--until <time>] [--limit <n>] [--dry-run] [--json]

Feeds the raw payloads of recorded rejects back through the path their source takes (same conversion,
same event_id, same writer), oldest first. Safe to repeat: what is already stored is counted as a
duplicate, never stored twice. Reports per reject: stored, duplicates (stored already), invalid (still
refused, by reason) and skipped (truncated over 64 KiB, unstorable, a single span, a message gone from
its stream). Each replayed reject gets replayed_at and replay_result. With no DATABASE_URL: the
database in CHRONICLE_DATA_DIR (a running serve's server, if there is one).

  --reason <r>     reject reason to replay, repeatable or comma-separated
                   (default: ${DEFAULT_REPLAY_REASONS.join(', ')})
  --origin <o>     nats, http or otlp (default: all)
  --since <time>   rejects recorded at or after, RFC 3339 or epoch milliseconds
  --until <time>   rejects recorded before, RFC 3339 or epoch milliseconds
  --limit <n>      at most n rejects (default 100000)
  --dry-run        convert and compare with the store; write nothing
  --json           one JSON line on stdout: {matched, stored, duplicates, invalid, skipped, ...}
`;

const ORIGINS: readonly Origin[] = ['nats', 'http', 'otlp'];

function time(flag: string, value: string | undefined, usage: (m: string) => Error): Date | undefined {
  if (value === undefined) return undefined;
  const millis = parseTimestamp(/^-?\d+$/.test(value) ? Number(value) : value);
  if (millis === undefined)
    throw usage(`--${flag} must be RFC 3339 or epoch milliseconds, got ${JSON.stringify(value)}`);
  return new Date(millis);
}

/** The flags of replay-rejects; `usage` makes the error for a bad one (exit 2). */
export function replayRejectsArgs(args: string[], usage: (message: string) => Error): ReplayOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      reason: { type: 'string', multiple: true },
      origin: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const reasons = (values.reason ?? [...DEFAULT_REPLAY_REASONS])
    .flatMap((r) => r.split(','))
    .map((r) => r.trim())
    .filter((r) => r !== '');
  if (reasons.length === 0) throw usage('--reason must name at least one reason');
  const origin = values.origin;
  if (origin !== undefined && !(ORIGINS as readonly string[]).includes(origin)) {
    throw usage(`--origin must be nats, http or otlp, got ${JSON.stringify(origin)}`);
  }
  const since = time('since', values.since, usage);
  const until = time('until', values.until, usage);
  if (since !== undefined && until !== undefined && until <= since)
    throw usage('--until must be after --since');
  const limit = values.limit ?? '100000';
  if (!/^\d+$/.test(limit) || Number(limit) < 1) {
    throw usage(`--limit must be a whole number ≥ 1, got ${JSON.stringify(limit)}`);
  }
  return {
    reasons: [...new Set(reasons)],
    origin: origin as Origin | undefined,
    since,
    until,
    limit: Number(limit),
    dryRun: values['dry-run'] ?? false,
    json: values.json ?? false,
  };
}
