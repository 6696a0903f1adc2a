/**
 * Why a connection to Temporal failed, in one line a person can act on. The SDKs say little: gRPC-js only reports
 * "deadline exceeded" when every attempt failed, Core a tonic/rustls debug string. So after a failure the address
 * is probed the same way the connection dialed it (TCP, then a TLS handshake with the same CA, client certificate,
 * server name and ALPN h2) and the probe's outcome names the cause: nothing listening, a server certificate that is
 * not trusted or not for this name, a client certificate missing or refused, TLS against a plain port and back.
 * Whatever the probe cannot explain falls back to the SDK's error (API key refused, namespace unknown, …).
 */
import net from 'node:net';
import tls from 'node:tls';
/** TLS settings of a connection (what the SDK takes as `tls`). */
export interface TlsSettings {
  serverNameOverride?: string;
  serverRootCACertificate?: Uint8Array;
  clientCertPair?: { crt: Uint8Array; key: Uint8Array };
}

/** What a diagnosis needs of the connection settings (TemporalAccess in temporal-connection.ts has it). */
export interface TemporalAccess {
  readonly tls: boolean;
  readonly mode: string;
  describe(): string;
  connectionOptions(address: string): { address: string; tls?: TlsSettings | boolean; apiKey?: string; metadata?: Record<string, string> };
}

/** A connection that could not be made (one line: where, how, and why). */
export class TemporalConnectError extends Error {
  override name = 'TemporalConnectError';
}

const PROBE_MS = 3_000;

/** Causes the probe only guesses at (a slow network may still connect): not reason enough to stop a connect early. */
export function isSlowAnswer(why: string): boolean {
  return / within \d+ s\b/.test(why);
}

/** The one-line error for a failed connect to `address` with `access`. */
export async function explainConnectError(err: unknown, address: string, access: TemporalAccess): Promise<TemporalConnectError> {
  const at = `cannot connect to Temporal at ${address} (${access.describe()})`;
  let why: string | null = null;
  try {
    why = await probe(access, address);
  } catch {
    why = null;
  }
  return new TemporalConnectError(`${at}: ${why ?? fromSdkError(err, access)}`);
}

/** What the SDK's error says, when the probe found the transport and TLS fine. */
function fromSdkError(err: unknown, access: TemporalAccess): string {
  const raw = collectMessages(err);
  if (/UNAUTHENTICATED|\b16\b.*unauth|Request unauthorized|invalid.*(api key|token)/i.test(raw)) {
    return `the server refused the credentials${access.mode.includes('API key') ? ' (TEMPORAL_API_KEY)' : ''}: ${firstLine(raw)}`;
  }
  if (/PERMISSION_DENIED|\b7 PERMISSION/i.test(raw)) return `permission denied: ${firstLine(raw)}`;
  if (/deadline|timed? ?out|timeout/i.test(raw)) return 'no answer in time (is the address right and the server up?)';
  return firstLine(raw) || 'unknown error';
}

/** A reason for the failure found by dialing `address` again, or null when TCP and TLS both look fine. */
export async function probe(access: TemporalAccess, address: string): Promise<string | null> {
  const { host, port } = splitAddress(address);
  if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) return `'${address}' is not host:port`;
  const tcp = await tcpProbe(host, port);
  if (tcp) return tcp;
  const opts = access.connectionOptions(address);
  if (!access.tls) {
    // A plain connection failed at an address that answers: a TLS handshake that completes means TLS is expected.
    const tlsAnswered = await handshake(host, port, { rejectUnauthorized: false });
    const spoke = tlsAnswered.kind === 'open' || tlsAnswered.kind === 'closed-after' || (tlsAnswered.kind === 'error' && tlsAnswered.secured);
    return spoke
      ? 'the server speaks TLS there: set TEMPORAL_TLS=true, and its CA and a client certificate if it needs them (TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH)'
      : null;
  }
  const t: TlsSettings = typeof opts.tls === 'object' ? opts.tls : {};
  const hasCert = !!t.clientCertPair;
  const name = t.serverNameOverride;
  const r = await handshake(host, port, {
    rejectUnauthorized: true,
    ...(t.serverRootCACertificate ? { ca: Buffer.from(t.serverRootCACertificate) } : {}),
    ...(t.clientCertPair ? { cert: Buffer.from(t.clientCertPair.crt), key: Buffer.from(t.clientCertPair.key) } : {}),
    ...(name ? { servername: name } : !net.isIP(host) ? { servername: host } : {}),
    checkServerIdentity: (h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(name ?? h, cert),
  });
  const refusedCert = hasCert
    ? 'the server refused the client certificate (is it signed by a CA the server trusts, and not expired? TEMPORAL_TLS_CLIENT_CERT_PATH)'
    : 'the server requires a client certificate (mTLS): set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH';
  switch (r.kind) {
    case 'open':
      return r.alpn === 'h2' ? null : "the server's TLS does not offer HTTP/2 (ALPN h2), which gRPC needs: is this a Temporal frontend?";
    case 'closed-after':
      return refusedCert;
    case 'error': {
      const code = r.code ?? '';
      const msg = r.message;
      if (/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE/.test(code)) {
        return `the server's certificate is not trusted: ${t.serverRootCACertificate ? 'TEMPORAL_TLS_SERVER_CA_CERT_PATH is not the CA that signed it' : 'give the CA that signed it (TEMPORAL_TLS_SERVER_CA_CERT_PATH)'}`;
      }
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        return `the server's certificate is not for '${name ?? host}'${name ? ' (TEMPORAL_TLS_SERVER_NAME)' : ''}: set TEMPORAL_TLS_SERVER_NAME to a name it carries`;
      }
      if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the server's certificate is not valid now (${code})`;
      if (/certificate required|alert number (116|40|42|43|44|45|46|48|49)\b|bad certificate|unknown ca|handshake failure|access denied|certificate unknown/i.test(msg)) return refusedCert;
      if (/wrong version number|packet length too long|unknown protocol|http request|ECONNRESET|socket hang up|disconnected before secure/i.test(`${code} ${msg}`)) {
        return 'the server does not speak TLS there (unset TEMPORAL_TLS, or check the address)';
      }
      return `TLS handshake failed: ${firstLine(msg)}`;
    }
    case 'timeout':
      return `no TLS answer from ${address} within ${PROBE_MS / 1000} s`;
  }
}

function tcpProbe(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (v: string | null) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(`no answer from ${host}:${port} within ${PROBE_MS / 1000} s (is the address right and the server up?)`), PROBE_MS);
    s.once('connect', () => done(null));
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') done(`nothing listens at ${host}:${port} (connection refused; is the server up?)`);
      else if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') done(`cannot resolve the host '${host}'`);
      else done(`${e.code ?? 'network error'} dialing ${host}:${port}`);
    });
  });
}

type Handshake =
  | { kind: 'open'; alpn: string | false | null | undefined }
  /** The handshake completed, then the server closed at once (TLS 1.3 servers refuse a client certificate so). */
  | { kind: 'closed-after' }
  /** `secured`: the error came after the handshake completed (the server refused us then). */
  | { kind: 'error'; code?: string; message: string; secured: boolean }
  | { kind: 'timeout' };

function handshake(host: string, port: number, opts: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    let settled = false;
    let secured = false;
    const s = tls.connect({ host, port, ALPNProtocols: ['h2'], ...opts });
    const done = (v: Handshake) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done({ kind: 'timeout' }), PROBE_MS);
    s.once('secureConnect', () => {
      secured = true;
      // A TLS 1.3 server checks the client's certificate after the client has finished: its refusal (an alert,
      // or a bare close) comes now. Reading lets it arrive; a server that keeps the connection accepted us.
      s.resume();
      const alpn = s.alpnProtocol;
      setTimeout(() => done({ kind: 'open', alpn }), 400);
    });
    s.once('error', (e: NodeJS.ErrnoException) => done({ kind: 'error', code: e.code, message: e.message, secured }));
    s.once('close', () =>
      done(secured ? { kind: 'closed-after' } : { kind: 'error', code: 'ECONNRESET', message: 'disconnected before secure TLS connection was established', secured }),
    );
  });
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) return { host: address, port: NaN };
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

function collectMessages(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; e && i < 8; i++) {
    if (e instanceof Error) parts.push(e.message);
    else parts.push(String(e));
    const details = (e as { details?: unknown }).details;
    if (typeof details === 'string') parts.push(details);
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(' | ');
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').trim();
}
