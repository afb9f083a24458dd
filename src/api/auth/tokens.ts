import { createHash, timingSafeEqual } from 'node:crypto';
import { SCOPES, type Scope } from './scopes.js';

/**
 * API tokens: their `NAME:SCOPE[+SCOPE…]:TOKEN` entries, parsed into named clients that keep only the
 * SHA-256 of their token, and the constant-time lookup of a presented token. No message here ever
 * contains a token: a bad entry is named by its place (entry 3, line 7), never by its text.
 */

/** A client allowed by an API token: its name, its scopes, and the SHA-256 of its token. */
export interface ApiClient {
  /** Names the client in logs and metrics (`dispatcher`). */
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** SHA-256 of the token; the token itself is not kept. */
  readonly tokenSha256: Buffer;
}

/** One entry to parse, and how a problem with it is named (`CHRONICLE_API_TOKENS entry 3`). */
export interface TokenEntry {
  text: string;
  where: string;
}

/** A client name: what logs and metric labels carry. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function sha256(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Entries of CHRONICLE_API_TOKENS: separated by commas or whitespace (newlines included). */
export function entriesOfVariable(value: string, variable: string): TokenEntry[] {
  return value
    .split(/[\s,]+/)
    .filter((t) => t !== '')
    .map((text, i) => ({ text, where: `${variable} entry ${i + 1}` }));
}

/** Entries of a tokens file: one per line; `#` starts a comment; blank lines are skipped. */
export function entriesOfFile(content: string, what: string): TokenEntry[] {
  return content.split(/\r?\n/).flatMap((line, i) => {
    const text = line.replace(/#.*$/, '').trim();
    return text === '' ? [] : [{ text, where: `${what} line ${i + 1}` }];
  });
}

/**
 * Parses entries into clients; `problems` names each bad entry by its place. Refused: an entry not of
 * the form NAME:SCOPE[+SCOPE…]:TOKEN (whitespace in it included), an unknown scope, a name used twice,
 * a token used twice.
 */
export function parseTokenEntries(entries: readonly TokenEntry[]): {
  clients: ApiClient[];
  problems: string[];
} {
  const clients: ApiClient[] = [];
  const problems: string[] = [];
  const names = new Map<string, string>();
  const hashes = new Map<string, string>();
  for (const { text, where } of entries) {
    const first = text.indexOf(':');
    const second = first < 0 ? -1 : text.indexOf(':', first + 1);
    const name = text.slice(0, first);
    const scopeText = text.slice(first + 1, second);
    const token = text.slice(second + 1);
    if (second < 0 || !NAME.test(name) || scopeText === '' || token === '' || /\s/.test(token)) {
      problems.push(
        `${where} is not NAME:SCOPE[+SCOPE…]:TOKEN (a name of letters, digits, _ . -, scopes from ${SCOPES.join(', ')}, a token without whitespace)`,
      );
      continue;
    }
    const scopes = scopeText.split('+');
    if (!scopes.every((s): s is Scope => (SCOPES as readonly string[]).includes(s))) {
      // The scope text is not repeated: an entry written NAME:TOKEN:SCOPE would print its token.
      problems.push(`${where} (${name}) has an unknown scope: scopes are ${SCOPES.join(', ')}`);
      continue;
    }
    const earlier = names.get(name);
    if (earlier !== undefined) {
      problems.push(`${where}: the name ${name} is already used by ${earlier}`);
      continue;
    }
    const tokenSha256 = sha256(token);
    const sameToken = hashes.get(tokenSha256.toString('hex'));
    if (sameToken !== undefined) {
      problems.push(`${where} (${name}) has the same token as ${sameToken}: give each client its own`);
      continue;
    }
    names.set(name, where);
    hashes.set(tokenSha256.toString('hex'), where);
    clients.push({ name, scopes: new Set(scopes), tokenSha256 });
  }
  return { clients, problems };
}

/**
 * The client a presented token belongs to, or undefined. Its SHA-256 is compared with every client's
 * in constant time, all of them, whichever matches: the time taken says nothing about which one did,
 * nor how much of a token was right.
 */
export function findClient(clients: readonly ApiClient[], token: string): ApiClient | undefined {
  const presented = sha256(token);
  let found: ApiClient | undefined;
  for (const client of clients) {
    const match = timingSafeEqual(presented, client.tokenSha256);
    if (match && found === undefined) found = client;
  }
  return found;
}
