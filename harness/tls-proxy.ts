/**
 * An mTLS-terminating TCP proxy for tests: TLS (HTTP/2 by ALPN) on a free port of 127.0.0.1, client certificates
 * required and checked against `ca`, each accepted connection piped to a plain backend (a dev server's gRPC port).
 * Stands in for the TLS front of a production Temporal cluster.
 */
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';

export interface TlsProxy {
  /** host:port to dial. */
  address: string;
  port: number;
  /** Handshakes that failed (the client was refused or gave up), with the reason Node saw. */
  refused: string[];
  /** Connections that completed the handshake with a client certificate the CA signed. */
  accepted: number;
  close(): Promise<void>;
}

export async function startTlsProxy(opts: { cert: string; key: string; ca: string; backend: string }): Promise<TlsProxy> {
  const [backendHost, backendPort] = splitAddress(opts.backend);
  const sockets = new Set<net.Socket>();
  const refused: string[] = [];
  const state = { accepted: 0 };
  const server = tls.createServer(
    {
      cert: fs.readFileSync(opts.cert),
      key: fs.readFileSync(opts.key),
      ca: fs.readFileSync(opts.ca),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (client) => {
      state.accepted++;
      const upstream = net.connect(backendPort, backendHost);
      sockets.add(client);
      sockets.add(upstream);
      const done = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', done).on('close', done);
      upstream.on('error', done).on('close', done);
      client.pipe(upstream);
      upstream.pipe(client);
    },
  );
  server.on('tlsClientError', (err) => refused.push(err.message));
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    refused,
    get accepted() {
      return state.accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
