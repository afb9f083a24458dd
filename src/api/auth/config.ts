import { readFileSync } from 'node:fs';
import {
  type ApiClient,
  type TokenEntry,
  entriesOfFile,
  entriesOfVariable,
  parseTokenEntries,
} from './tokens.js';

/**
 * The configuration slice of access control: its two variables, read by src/config.ts (the only reader
 * of process.env), and the clients they allow. Both may be set: the clients of both are allowed, and a
 * name or a token may not appear twice across them. The tokens stop here: the configuration keeps only
 * their SHA-256.
 */

/** The variables of the slice, as set (an empty value counts as unset). */
export interface AuthEnv {
  /** Entries `NAME:SCOPE[+SCOPE…]:TOKEN`, separated by commas or whitespace. */
  CHRONICLE_API_TOKENS?: string | undefined;
  /** A file with one entry per line; `#` starts a comment. */
  CHRONICLE_API_TOKENS_FILE?: string | undefined;
  /** The one token Chronicle's own clients (simulate, demo) send. */
  CHRONICLE_API_TOKEN?: string | undefined;
}

export const AUTH_VARIABLES = [
  'CHRONICLE_API_TOKENS',
  'CHRONICLE_API_TOKENS_FILE',
  'CHRONICLE_API_TOKEN',
] as const;

/** The variables that hold tokens in clear; `chronicle serve` removes them from its environment once read. */
export const TOKEN_VARIABLES = ['CHRONICLE_API_TOKENS', 'CHRONICLE_API_TOKEN'] as const;

/** Access control; absent from the configuration when no token is configured (everything open). */
export interface AuthConfig {
  /** The clients allowed, each with its scopes and the SHA-256 of its token. */
  clients: readonly ApiClient[];
}

/**
 * The slice's part of the configuration (undefined: no token configured) and its problems, each naming
 * the entry or line at fault and never its text.
 */
export function authOptions(e: AuthEnv): {
  auth: AuthConfig | undefined;
  /** CHRONICLE_API_TOKEN, trimmed; what `chronicle simulate` sends. */
  clientToken: string | undefined;
  problems: string[];
} {
  const problems: string[] = [];
  const entries: TokenEntry[] = [];
  if (e.CHRONICLE_API_TOKENS !== undefined) {
    entries.push(...entriesOfVariable(e.CHRONICLE_API_TOKENS, 'CHRONICLE_API_TOKENS'));
  }
  const file = e.CHRONICLE_API_TOKENS_FILE;
  if (file !== undefined) {
    try {
      entries.push(...entriesOfFile(readFileSync(file, 'utf8'), 'tokens file'));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      problems.push(
        `CHRONICLE_API_TOKENS_FILE: cannot read ${file}${typeof code === 'string' ? ` (${code})` : ''}`,
      );
    }
  }
  const parsed = parseTokenEntries(entries);
  problems.push(...parsed.problems);
  const set = e.CHRONICLE_API_TOKENS !== undefined || file !== undefined;
  if (set && entries.length === 0 && problems.length === 0) {
    // Set but holding no entry (a file of comments only): refused rather than leaving the API open.
    const variable = file !== undefined ? 'CHRONICLE_API_TOKENS_FILE' : 'CHRONICLE_API_TOKENS';
    problems.push(`${variable}: holds no token entry; unset it to run without access control`);
  }
  const clientToken = e.CHRONICLE_API_TOKEN?.trim();
  if (clientToken !== undefined && /\s/.test(clientToken)) {
    problems.push('CHRONICLE_API_TOKEN: a token has no whitespace (set one token, not a list)');
  }
  return {
    auth: parsed.clients.length === 0 ? undefined : { clients: parsed.clients },
    clientToken: clientToken === '' ? undefined : clientToken,
    problems,
  };
}
