/**
 * Child processes and ports for tests that run Chronicle (or its image's runtime) as a real process.
 */
import net from 'node:net';

/** How a child process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The process's exit, or an error saying what it printed (`output()`) when it takes longer than
 * `millis`.
 */
export async function exitWithin(
  proc: { readonly exited: Promise<Exit>; output(): string },
  millis: number,
): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`process still running after ${millis} ms\n${proc.output()}`)),
      millis,
    );
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port nothing listens on right now (the kernel picks it; we release it for the process under test). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
