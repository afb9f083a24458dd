import net from 'node:net';
import { describe } from 'vitest';

/** Set by .ci/run: an unreachable service then fails the integration tests instead of skipping them. */
export const SERVICES_REQUIRED = process.env.CHRONICLE_TEST_REQUIRE_SERVICES === '1';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

const postgresUp = await reachable(DATABASE_URL, 5432);
const natsUp = await reachable(NATS_URL, 4222);

/** `describe` for tests that need Postgres: skipped locally when it is down, failing when required. */
export const describeWithPostgres = postgresUp || SERVICES_REQUIRED ? describe : describe.skip;
/** `describe` for tests that need Postgres and NATS. */
export const describeWithServices = (postgresUp && natsUp) || SERVICES_REQUIRED ? describe : describe.skip;
