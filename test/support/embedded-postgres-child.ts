/**
 * Runs embedded PostgreSQL in a process of its own, for the tests that kill or signal its owner.
 * Usage: node --import tsx embedded-postgres-child.ts <dataDir> <port> <hold|graceful>
 * Prints JSON lines on stdout: {"event":"ready","url":…}; in graceful mode, on SIGTERM or SIGINT,
 * it waits, queries the server (which must still be up), stops it and prints "stopped".
 */
import { pino } from 'pino';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/embedded-postgres/embedded-postgres.js';

const [dataDir, port, mode] = process.argv.slice(2);
if (dataDir === undefined || port === undefined || (mode !== 'hold' && mode !== 'graceful')) {
  console.error('usage: embedded-postgres-child.ts <dataDir> <port> <hold|graceful>');
  process.exit(2);
}
const say = (fields: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(fields)}\n`);
};
const logger = pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
const db = await startEmbeddedPostgres({ dataDir, port: Number(port), logger });

if (mode === 'graceful') {
  // Stands for Chronicle's shutdown: the flush still needs the server after the signal.
  const onSignal = (signal: NodeJS.Signals): void => {
    void (async () => {
      await new Promise((r) => setTimeout(r, 300));
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      say({ event: 'queried-after-signal', signal });
      await db.stop();
      say({ event: 'stopped' });
      process.exit(0);
    })().catch((err: unknown) => {
      say({ event: 'failed', error: String(err) });
      process.exit(1);
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
say({ event: 'ready', url: db.url, pid: process.pid });
// Stay up until killed or signalled.
setInterval(() => undefined, 1 << 30);
