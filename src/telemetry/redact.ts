/**
 * Keeping secrets out of what Chronicle writes and serves. Secrets are never put into a log line or an
 * answer on purpose (URLs are logged through redactUrl); scrubSecrets is the safety net under that: the
 * logger passes every line through it, so a secret some library put into an error message is masked too.
 */

/** What a secret is replaced with. */
export const REDACTED = '***';

// Query parameters of a connection string that hold a secret (libpq: password, sslpassword).
const SECRET_PARAMS = ['password', 'sslpassword'];
// Schemes where a user without a password is a token (nats://token@host).
const TOKEN_SCHEMES = new Set(['nats:', 'tls:', 'ws:', 'wss:']);

/**
 * `value` with its password (and a NATS token) replaced by ***: postgres://u:***@host/db,
 * nats://***@host. A value that is not a URL is returned as is when it cannot hold credentials, else
 * replaced whole.
 */
export function redactUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value.includes('@') ? REDACTED : value;
  }
  if (url.password !== '') url.password = REDACTED;
  else if (url.username !== '' && TOKEN_SCHEMES.has(url.protocol)) url.username = REDACTED;
  for (const param of SECRET_PARAMS) {
    if (url.searchParams.has(param)) url.searchParams.set(param, REDACTED);
  }
  // URLSearchParams encodes the asterisks; they are safe as they are.
  return url.toString().replaceAll('%2A%2A%2A', REDACTED);
}

/** Every form in which `secret` may be written: as is, percent-encoded, and JSON-escaped. */
function formsOf(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  return [...forms];
}

/**
 * Returns a function that masks every known secret in a text. Secrets shorter than 4 characters are
 * not masked (they would mask ordinary words); configuration checks never echo values anyway.
 */
export function secretScrubber(secrets: readonly string[]): (text: string) => string {
  const forms = [...new Set(secrets.filter((s) => s.length >= 4).flatMap(formsOf))]
    // Longest first, so a secret containing another is masked whole.
    .sort((a, b) => b.length - a.length);
  if (forms.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const form of forms) if (out.includes(form)) out = out.replaceAll(form, REDACTED);
    return out;
  };
}
