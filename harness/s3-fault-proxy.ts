/**
 * A fault-injecting HTTP reverse proxy for S3 on loopback (node:http only, streaming both ways), placed in front
 * of a real S3-compatible server (moto) so tests can break the wire between the worker and its object store.
 *
 * Point the worker's S3 endpoint at `proxy.endpoint` (WORKBOOKS_S3_ENDPOINT; path-style, which is the default
 * with a custom endpoint). Requests pass through unchanged (method, path, query, headers, body), so SigV4
 * signatures stay valid for the upstream (moto does not check the Host header against the signature anyway).
 *
 * Behaviour is a list of rules switched at run time; the first rule that matches a request and still has
 * uses left decides what happens to it:
 *   - `status`: answer with an S3-style XML error (500 InternalError, 503 SlowDown, 403 AccessDenied, 404
 *     NoSuchBucket, ...) without forwarding; the request body is read first, as a real server would;
 *   - `reset`: destroy the client's socket, either mid-request (after `afterBytes` of the request body, before
 *     anything is forwarded) or mid-response (after the status line, the headers and `afterBytes` of the body;
 *     default half of it);
 *   - `delay`: forward, but hold the response's first byte for `firstByteMs` and/or send its body in
 *     `chunkBytes` pieces with `chunkDelayMs` between them.
 * With no matching rule the request passes through. Requests are classified into S3 operations (UploadPart,
 * GetObject, HeadObject, ...) from method, path and query; `stats()` counts the requests seen per operation
 * and the faults injected per operation and action, so a test can assert that a fault really happened.
 */
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';

export type S3Op =
  | 'PutObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CopyObject'
  | 'HeadBucket'
  | 'ListObjects'
  | 'DeleteObjects'
  | 'CreateBucket'
  | 'DeleteBucket'
  | 'Other';

export interface FaultMatch {
  /** HTTP method(s), upper case. */
  method?: string | string[];
  /** S3 operation(s), as classified by `classify`. */
  op?: S3Op | S3Op[];
  /** Query parameter names that must all be present (e.g. ['uploadId', 'partNumber']). */
  query?: string[];
  /** The path (bucket and key, path-style, without the query) must match. */
  path?: RegExp;
  /** Only requests with a Range header (ranged GETs) or only without. */
  ranged?: boolean;
}

export type FaultAction =
  | { type: 'status'; status: number; code?: string; message?: string }
  | { type: 'reset'; phase: 'request' | 'response'; afterBytes?: number }
  | { type: 'delay'; firstByteMs?: number; chunkDelayMs?: number; chunkBytes?: number };

export interface FaultRule {
  match?: FaultMatch;
  action: FaultAction;
  /** How many requests this rule applies to (default: all of them, until cleared). */
  times?: number;
}

export interface ProxyStats {
  /** Requests seen, per operation. */
  seen: Partial<Record<S3Op, number>>;
  /** Faults injected, keyed `<op>:<action>` (action = `status-503`, `reset-request`, `reset-response`, `delay`). */
  injected: Record<string, number>;
  /** Total faults injected. */
  injectedTotal: number;
}

export interface S3FaultProxy {
  /** http://127.0.0.1:<port>: the S3 endpoint to give the worker. */
  endpoint: string;
  /** The server behind the proxy. */
  upstream: string;
  /** Adds a rule (after the existing ones); returns a handle with the number of times it fired. */
  add(rule: FaultRule): RuleHandle;
  /** The next `n` matching requests get an S3 error (default 503 SlowDown). */
  failNext(n: number, match?: FaultMatch, status?: number, code?: string): RuleHandle;
  /** The next `n` matching requests have their connection reset mid-request or mid-response. */
  resetNext(n: number, phase: 'request' | 'response', match?: FaultMatch, afterBytes?: number): RuleHandle;
  /** Matching requests (the next `times`, default all) are slowed down. */
  delay(opts: { firstByteMs?: number; chunkDelayMs?: number; chunkBytes?: number }, match?: FaultMatch, times?: number): RuleHandle;
  /** Every request fails with this error until `heal()` (a permanent failure). */
  failAll(status?: number, code?: string, message?: string): RuleHandle;
  /** Back to pass-through: drops every rule. */
  heal(): void;
  stats(): ProxyStats;
  resetStats(): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

export interface RuleHandle {
  readonly rule: FaultRule;
  /** How many requests this rule was applied to so far. */
  readonly fired: number;
  /** Removes the rule. */
  remove(): void;
}

const DEFAULT_CODES: Record<number, string> = {
  400: 'InvalidRequest',
  403: 'AccessDenied',
  404: 'NoSuchBucket',
  409: 'OperationAborted',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'SlowDown',
  504: 'GatewayTimeout',
};

/** Which S3 operation a path-style request is (bucket in the first path segment). */
export function classify(method: string, url: string, headers: http.IncomingHttpHeaders = {}): S3Op {
  const u = new URL(url, 'http://proxy.invalid');
  const segs = u.pathname.split('/').filter((s) => s !== '');
  const q = u.searchParams;
  const m = method.toUpperCase();
  if (segs.length <= 1) {
    // Bucket level.
    if (m === 'HEAD') return 'HeadBucket';
    if (m === 'GET' && segs.length === 1) return 'ListObjects';
    if (m === 'PUT' && segs.length === 1) return 'CreateBucket';
    if (m === 'DELETE' && segs.length === 1) return 'DeleteBucket';
    if (m === 'POST' && q.has('delete')) return 'DeleteObjects';
    return 'Other';
  }
  switch (m) {
    case 'PUT':
      if (q.has('uploadId') && q.has('partNumber')) return 'UploadPart';
      if (headers['x-amz-copy-source']) return 'CopyObject';
      return 'PutObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return 'Other';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'GET':
      return q.has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    default:
      return 'Other';
  }
}

function matches(match: FaultMatch | undefined, req: http.IncomingMessage, op: S3Op): boolean {
  if (!match) return true;
  const method = (req.method ?? 'GET').toUpperCase();
  if (match.method !== undefined && !([] as string[]).concat(match.method).includes(method)) return false;
  if (match.op !== undefined && !([] as S3Op[]).concat(match.op).includes(op)) return false;
  const u = new URL(req.url ?? '/', 'http://proxy.invalid');
  if (match.query && !match.query.every((k) => u.searchParams.has(k))) return false;
  if (match.path && !match.path.test(decodeURIComponent(u.pathname))) return false;
  if (match.ranged !== undefined && match.ranged !== (req.headers.range !== undefined)) return false;
  return true;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  type Live = { rule: FaultRule; left: number; fired: number; removed: boolean };
  let rules: Live[] = [];
  let seen: Partial<Record<S3Op, number>> = {};
  let injected: Record<string, number> = {};
  let injectedTotal = 0;
  const sockets = new Set<net.Socket>();

  const note = (op: S3Op, what: string) => {
    const k = `${op}:${what}`;
    injected[k] = (injected[k] ?? 0) + 1;
    injectedTotal += 1;
  };

  /** The first rule that matches and has uses left; its use is taken. */
  const take = (req: http.IncomingMessage, op: S3Op): FaultAction | null => {
    for (const r of rules) {
      if (r.removed || r.left <= 0) continue;
      if (!matches(r.rule.match, req, op)) continue;
      r.left -= 1;
      r.fired += 1;
      return r.rule.action;
    }
    return null;
  };

  const sendError = (req: http.IncomingMessage, res: http.ServerResponse, op: S3Op, a: Extract<FaultAction, { type: 'status' }>) => {
    const code = a.code ?? DEFAULT_CODES[a.status] ?? 'InternalError';
    const u = new URL(req.url ?? '/', 'http://proxy.invalid');
    const bucket = u.pathname.split('/').filter(Boolean)[0] ?? '';
    const body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code>` +
      `<Message>${xmlEscape(a.message ?? `injected by the S3 fault proxy (${op})`)}</Message>` +
      (bucket ? `<BucketName>${xmlEscape(bucket)}</BucketName>` : '') +
      `<Resource>${xmlEscape(u.pathname)}</Resource><RequestId>${crypto.randomBytes(8).toString('hex')}</RequestId></Error>`;
    // Read the request body first (like a server that looked at it), so the client is not cut off mid-upload.
    req.resume();
    const answer = () => {
      if (res.destroyed) return;
      res.writeHead(a.status, {
        'content-type': 'application/xml',
        'x-amz-request-id': 'injected',
        ...(a.status === 503 ? { 'retry-after': '0' } : {}),
        'content-length': req.method === 'HEAD' ? 0 : Buffer.byteLength(body),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.readableEnded) answer();
    else req.once('end', answer);
  };

  /** Destroys the client's socket after `afterBytes` of the request body (0: right after the headers). */
  const resetRequest = (req: http.IncomingMessage, afterBytes: number) => {
    let got = 0;
    const cut = () => req.socket.destroy();
    if (afterBytes <= 0) {
      cut();
      return;
    }
    req.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= afterBytes) cut();
    });
    req.on('end', cut);
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, action: FaultAction | null) => {
    const headers = { ...req.headers };
    const preq = http.request(
      { protocol: up.protocol, hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent },
      (pres) => void respond(pres),
    );
    preq.on('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`upstream error: ${err.message}`);
      } else {
        res.destroy(err);
      }
    });
    req.pipe(preq);
    req.on('close', () => {
      if (!req.complete) preq.destroy();
    });

    const respond = async (pres: http.IncomingMessage) => {
      try {
        if (action?.type === 'delay' && action.firstByteMs) await sleep(action.firstByteMs);
        if (res.destroyed) {
          pres.destroy();
          return;
        }
        res.writeHead(pres.statusCode ?? 502, pres.statusMessage, pres.headers);
        if (action?.type === 'reset' && action.phase === 'response') {
          const len = Number(pres.headers['content-length'] ?? NaN);
          const cutAt = action.afterBytes ?? (Number.isFinite(len) ? Math.floor(len / 2) : 0);
          res.flushHeaders();
          let sent = 0;
          for await (const chunk of pres) {
            const buf = chunk as Buffer;
            const room = cutAt - sent;
            if (room > 0) {
              const piece = buf.subarray(0, Math.min(room, buf.length));
              res.write(piece);
              sent += piece.length;
            }
            if (sent >= cutAt) break;
          }
          // Give the bytes written a moment to leave, then cut the connection without finishing the body.
          await sleep(20);
          res.socket?.destroy();
          pres.destroy();
          return;
        }
        if (action?.type === 'delay' && (action.chunkDelayMs ?? 0) > 0) {
          const size = action.chunkBytes ?? 64 * 1024;
          for await (const chunk of pres) {
            const buf = chunk as Buffer;
            for (let off = 0; off < buf.length; off += size) {
              if (res.destroyed) {
                pres.destroy();
                return;
              }
              if (!res.write(buf.subarray(off, off + size))) await new Promise<void>((r) => res.once('drain', () => r()));
              await sleep(action.chunkDelayMs!);
            }
          }
          res.end();
          return;
        }
        pres.pipe(res);
      } catch (err) {
        res.destroy(err as Error);
      }
    };
  };

  const server = http.createServer((req, res) => {
    const op = classify(req.method ?? 'GET', req.url ?? '/', req.headers);
    seen[op] = (seen[op] ?? 0) + 1;
    const action = take(req, op);
    if (action?.type === 'status') {
      note(op, `status-${action.status}`);
      sendError(req, res, op, action);
      return;
    }
    if (action?.type === 'reset' && action.phase === 'request') {
      note(op, 'reset-request');
      resetRequest(req, action.afterBytes ?? 0);
      return;
    }
    if (action?.type === 'reset') note(op, 'reset-response');
    if (action?.type === 'delay') note(op, 'delay');
    forward(req, res, action);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // A reset client socket is expected here; nothing to report.
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const handle = (live: Live): RuleHandle => ({
    rule: live.rule,
    get fired() {
      return live.fired;
    },
    remove() {
      live.removed = true;
      rules = rules.filter((r) => r !== live);
    },
  });

  const proxy: S3FaultProxy = {
    endpoint: `http://127.0.0.1:${port}`,
    upstream,
    add(rule) {
      const live: Live = { rule, left: rule.times ?? Infinity, fired: 0, removed: false };
      rules.push(live);
      return handle(live);
    },
    failNext(n, match, status = 503, code) {
      return proxy.add({ match, action: { type: 'status', status, ...(code ? { code } : {}) }, times: n });
    },
    resetNext(n, phase, match, afterBytes) {
      return proxy.add({ match, action: { type: 'reset', phase, ...(afterBytes !== undefined ? { afterBytes } : {}) }, times: n });
    },
    delay(opts, match, times) {
      return proxy.add({ match, action: { type: 'delay', ...opts }, ...(times !== undefined ? { times } : {}) });
    },
    failAll(status = 503, code, message) {
      return proxy.add({ action: { type: 'status', status, ...(code ? { code } : {}), ...(message ? { message } : {}) } });
    },
    heal() {
      for (const r of rules) r.removed = true;
      rules = [];
    },
    stats() {
      return { seen: { ...seen }, injected: { ...injected }, injectedTotal };
    },
    resetStats() {
      seen = {};
      injected = {};
      injectedTotal = 0;
    },
    async close() {
      proxy.heal();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
