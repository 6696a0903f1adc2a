/**
 * Bounds shared by the HTTP servers (the API and every data server): timeouts and connection cap, the declared
 * size of a body, and how a refused request's unread body is dealt with (the connection is closed, not drained).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpLimits } from './config';

/** Fastify options bounding a server's clients: header and request timeouts, keep-alive (see HttpLimits). */
export function httpServerOptions(limits: HttpLimits) {
  return {
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 4))) },
  };
}

/** A request's Content-Length (null when it has none: a chunked body); 400 when it is not a number. */
export function declaredLength(req: IncomingMessage): number | null {
  const raw = req.headers['content-length'];
  if (raw === undefined) return null;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) throw Object.assign(new Error('content-length is not a number'), { statusCode: 400 });
  return n;
}

/** How long a connection closed with an unread body keeps discarding what arrives after the answer. */
export const LINGER_MS = 1000;

/**
 * For an answer given before the request's body was read: the connection closes after the answer and the rest of
 * the body is never read. Closing at once with unread bytes makes the kernel reset the connection, and a client
 * still sending can lose the answer to that reset; so the answer is sent with its end (FIN), reading stops (the
 * client's sends block on full buffers, they are not read into memory), and the socket is destroyed LINGER_MS
 * later, by when the client has read the answer.
 */
export function closeAfterAnswer(req: IncomingMessage, setHeader: (name: string, value: string) => void): void {
  if (req.complete) return;
  setHeader('connection', 'close');
  const socket = req.socket as Socket & { destroySoon?: () => void; lingering?: boolean };
  if (!socket || socket.lingering) return;
  socket.lingering = true;
  // Node ends a `connection: close` answer with socket.destroySoon(): end, then destroy once the answer is out.
  socket.destroySoon = function (this: Socket) {
    if (this.writable) this.end();
    // After Node has set the request to discard its body (which starts reading again): stop reading altogether.
    setImmediate(() => (this as unknown as { _handle?: { readStop?: () => void } | null })._handle?.readStop?.());
    setTimeout(() => this.destroy(), LINGER_MS).unref();
  };
}
