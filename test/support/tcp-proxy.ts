/**
 * A TCP proxy for fault tests: listens on a free loopback port and forwards every connection to a
 * target, so a test can cut a dependency (Postgres, NATS, an OTLP backend) without stopping the
 * machine's server, or slow it down.
 *
 * States: forwarding → (cut) → cut → (restore) → forwarding. While cut, every open connection is
 * destroyed and new ones are closed at once (`refuse`) or accepted and never answered (`blackhole`).
 */
import net from 'node:net';

export type CutMode = 'refuse' | 'blackhole';

export interface TcpProxy {
  /** The port to connect to instead of the target's. */
  readonly port: number;
  /** Connections accepted so far (including those refused while cut). */
  readonly connections: number;
  /** Destroys every open connection and refuses or black-holes new ones until restore(). */
  cut(mode?: CutMode): void;
  restore(): void;
  /** Delays every chunk sent towards the target by this long (0: none), keeping their order. */
  setLatency(millis: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let mode: CutMode | undefined;
  let latencyMillis = 0;
  let connections = 0;
  const track = (s: net.Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  };
  const server = net.createServer((client) => {
    connections++;
    track(client);
    client.on('error', () => client.destroy());
    if (mode === 'refuse') return void client.destroy();
    if (mode === 'blackhole') return; // held open, never forwarded; destroyed by restore()
    const upstream = net.connect(target);
    track(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (latencyMillis === 0) upstream.write(chunk);
      else setTimeout(() => upstream.writable && upstream.write(chunk), latencyMillis);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const destroyAll = () => {
    for (const s of open) s.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    cut(cutMode = 'refuse') {
      mode = cutMode;
      destroyAll();
    },
    restore() {
      mode = undefined;
      destroyAll(); // black-holed connections too: clients reconnect to a working proxy
    },
    setLatency(millis) {
      latencyMillis = millis;
    },
    async close() {
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
