/** Checks of the addresses the simulator is given, before it connects to anything. */

/** Why `url` is not an http(s) URL with a host; undefined when it is one. */
export function httpUrlProblem(url: string): string | undefined {
  const problem = `must be an http(s) URL such as http://127.0.0.1:8700, got ${JSON.stringify(url)}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return problem;
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') return problem;
  return undefined;
}

/** Why `url` is not a NATS server (nats://host:port, tls://host:port or host:port); undefined when it is. */
export function natsServerProblem(url: string): string | undefined {
  const problem = `must be a NATS server such as nats://127.0.0.1:4222 or 127.0.0.1:4222, got ${JSON.stringify(url)}`;
  let parsed: URL;
  try {
    parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `nats://${url}`);
  } catch {
    return problem;
  }
  if (parsed.protocol !== 'nats:' && parsed.protocol !== 'tls:') return problem;
  if (
    parsed.hostname === '' ||
    !['', '/'].includes(parsed.pathname) ||
    parsed.search !== '' ||
    parsed.hash !== ''
  ) {
    return problem;
  }
  return undefined;
}
