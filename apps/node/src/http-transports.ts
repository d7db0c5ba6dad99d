import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  CloseCode,
  type Cursors,
  decodeCursors,
  encodeCursors,
  HttpError,
  isValidTopic,
  MAX_TOKEN_LENGTH,
  parseCursors,
  topicAllowed,
} from '@herald/protocol';
import { isRedisOutage } from '@herald/store';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HttpAcks } from './acks.js';
import { type DeviceIdentity, TokenError } from './auth.js';
import { takeSocket } from './http-detach.js';
import { attachPoll, PollConn, pollTransport } from './poll-transport.js';
import type { AppDirectory, Refusal, SessionDeps } from './ports.js';
import { clientAddress } from './proxy-protocol.js';
import { Session } from './session.js';
import { attachSse, SseConn, type SseSink, sseTransport } from './sse-transport.js';
import { COOKIE_PATH, clearTokenCookie, secureRequest, setTokenCookie, tokenCookie } from './token-cookie.js';
import type { Transport } from './transport.js';

export const SSE_PATH = '/v1/sse';
export const POLL_PATH = '/v1/poll';
export const ACKS_PATH = '/v1/acks';

/** `retry:` of a stream that is not draining: the browser reconnects after this (its default is ~3 s). */
const SSE_RETRY_MS = 1000;
/** A long-poll's `wait` without the parameter (docs/protocol.md), under the cap. */
const DEFAULT_WAIT_S = 25;
/** `Retry-After` (s) of an SSE or long-poll over its app's connection cap: the cap's count interval (apps.ts). */
const APP_RETRY_S = 2;
/** Largest `POST /v1/acks` body: 256 cursors of long topic names fit. */
const ACKS_BODY_BYTES = 64 * 1024;

/** What the HTTP transports need of their node. */
export interface HttpContext {
  /** The default app's deps: a session starts on them and moves to its token's app at accept. */
  readonly deps: SessionDeps;
  /** The node's apps: origins per app, app connection caps. */
  readonly apps: AppDirectory & {
    anyOriginAllowed(origin: string): boolean;
    originListed(origin: string): boolean;
  };
  readonly acks: HttpAcks;
  /** Open SSE streams (their heartbeat). */
  readonly sse: Set<SseConn>;
  readonly pollMaxWaitMs: number;
  readonly drainMs: number;
  /** Mark the token cookie `Secure` on every request, not only TLS ones (HERALD_COOKIE_SECURE). */
  readonly cookieSecure?: boolean;
  /** Whether a new session may start on this node, else why not (node.ts `admission`). */
  admission(): Refusal | undefined;
}

interface Opened {
  id: DeviceIdentity;
  cursors: Cursors;
  topics: string[];
}

type Query = Record<string, string | string[] | undefined>;

function httpError(
  reply: FastifyReply,
  spec: { code: string; status: number },
  message: string,
): FastifyReply {
  if (spec.status === 401) reply.header('www-authenticate', 'Bearer realm="herald"');
  if (spec.status === 503) reply.header('retry-after', '1');
  return reply.code(spec.status).send({ code: spec.code, message });
}

function event(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Lets Fastify forget a hijacked request: its per-request objects (request, reply, a child
 * logger, about 3 KiB measured with 2,000 idle SSE streams) are otherwise held by its `finish`
 * listener for as long as the stream lives. Running that listener now is what Fastify does when
 * a response ends: it drops the socket's reference to the request and runs the `onResponse`
 * hooks (the node has none) and the request log (disabled).
 */
function releaseFastify(res: ServerResponse): void {
  for (const l of res.listeners('finish'))
    if (typeof l === 'function' && l.name === 'onResFinished') (l as () => void)();
  // Node keeps the header block it wrote as a string built of ~20 concatenations (about 700 B of
  // string nodes): reading a character makes V8 flatten it in place, and the pieces go.
  (res as unknown as { _header?: string })._header?.charCodeAt(0);
  // The request's header copies are not read after this (another ~600 B per stream).
  res.req.rawHeaders.length = 0;
}

/** A query parameter given once, or an error message. */
function param(q: Query, name: string): string | undefined | Error {
  const v = q[name];
  if (Array.isArray(v)) return new Error(`${name} must be given once`);
  return v;
}

/**
 * `GET /v1/sse`, `GET /v1/poll` and `POST /v1/acks` on the push node's port (docs/protocol.md):
 * the request is checked (token, cursors, topics) before any stream starts, then an SSE stream or
 * a long-poll is a `Session` on its transport (sse-transport.ts, poll-transport.ts), exactly as a
 * WebSocket is after its `hello`. No state outlives a request but Redis's: any node serves any
 * request, and the cursors say where to resume.
 */
export function httpTransports(app: FastifyInstance, ctx: HttpContext): void {
  const { deps } = ctx;

  /**
   * CORS for browsers on another origin (the allowed ones, or any without a list). Before the
   * token is read (a preflight has none) an origin passes if some app allows it; `appOrigin`
   * then checks it against the token's app.
   */
  const cors = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (!ctx.apps.anyOriginAllowed(origin)) {
      httpError(reply, HttpError.OriginForbidden, `origin ${origin} is not allowed`);
      return false;
    }
    reply.header('access-control-allow-origin', origin);
    reply.header('vary', 'origin');
    // Cookies (the token cookie) cross origins only to the origins listed, never to "any".
    if (ctx.apps.originListed(origin)) reply.header('access-control-allow-credentials', 'true');
    return true;
  };

  /** Token, cursors and topics of a request; answers the error itself and returns undefined. */
  const open = async (
    req: FastifyRequest,
    reply: FastifyReply,
    sse: boolean,
  ): Promise<Opened | undefined> => {
    if (!cors(req, reply)) return undefined;
    const q = req.query as Query;
    const id = await authenticate(req, reply);
    if (!id) return undefined;
    let enc = sse ? req.headers['last-event-id'] : undefined;
    if (Array.isArray(enc) || enc === '') enc = undefined;
    if (enc === undefined) {
      const c = param(q, 'cursors');
      if (c instanceof Error) return void httpError(reply, HttpError.BadRequest, c.message);
      enc = c;
    }
    let cursors: Cursors = {};
    if (enc !== undefined) {
      const d = decodeCursors(enc);
      if (!d.ok) return void httpError(reply, HttpError.BadRequest, `cursors: ${d.reason}`);
      cursors = d.cursors;
    }
    const t = param(q, 'topics');
    if (t instanceof Error) return void httpError(reply, HttpError.BadRequest, t.message);
    const topics = t ? t.split(',').filter((x) => x !== '') : [];
    if (topics.length > deps.limits.maxTopics)
      return void httpError(reply, HttpError.BadRequest, `at most ${deps.limits.maxTopics} topics`);
    for (const topic of topics) {
      if (!isValidTopic(topic))
        return void httpError(
          reply,
          HttpError.BadRequest,
          `topics: ${JSON.stringify(topic.slice(0, 64))} is not dot-separated words of A-Z a-z 0-9 _ -, at most 128 characters`,
        );
      if (!topicAllowed(id.topics, topic))
        return void httpError(reply, HttpError.TopicForbidden, `token does not allow topic ${topic}`);
    }
    return { id, cursors, topics };
  };

  /**
   * The device token: `Authorization: Bearer`, else the `token` query parameter, else the token
   * cookie (token-cookie.ts); `headerOnly` for the route that sets the cookie. Never logged.
   */
  const authenticate = async (
    req: FastifyRequest,
    reply: FastifyReply,
    headerOnly = false,
  ): Promise<DeviceIdentity | undefined> => {
    const h = req.headers.authorization;
    let token: string | undefined | Error;
    if (h !== undefined) token = h.startsWith('Bearer ') ? h.slice(7).trim() : new Error('not Bearer');
    else if (!headerOnly) token = param(req.query as Query, 'token') ?? tokenCookie(req.headers.cookie);
    if (token === undefined || token instanceof Error || token === '' || token.length > MAX_TOKEN_LENGTH) {
      httpError(
        reply,
        HttpError.Unauthorized,
        headerOnly
          ? 'a device token is required: Authorization: Bearer <token>'
          : 'a device token is required: Authorization: Bearer <token>, the token query parameter, or the herald_token cookie (POST /v1/cookie)',
      );
      return undefined;
    }
    let id: DeviceIdentity;
    try {
      id = await deps.verifier.verify(token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      httpError(reply, err.expired ? HttpError.TokenExpired : HttpError.Unauthorized, err.message);
      return undefined;
    }
    const origin = req.headers.origin;
    if (!ctx.apps.originAllowed(id.app, origin)) {
      httpError(reply, HttpError.OriginForbidden, `origin ${origin} is not allowed for app ${id.app}`);
      return undefined;
    }
    return id;
  };

  /** 429 when the token's app is at its connection cap across nodes (docs/tenancy.md). */
  const overAppCap = (reply: FastifyReply, id: DeviceIdentity): boolean => {
    const refused = ctx.apps.admit(id.app);
    if (!refused) return false;
    reply.header('retry-after', String(APP_RETRY_S));
    httpError(reply, HttpError.RateLimited, refused.reason);
    return true;
  };

  const remote = (req: FastifyRequest): string => clientAddress(req.raw.socket as Socket) ?? req.ip;

  /** Reconnect hint of a draining node: spread over its drain window. */
  const spread = (): number => Math.floor(Math.random() * Math.max(250, ctx.drainMs));

  app.get(SSE_PATH, async (req, reply) => {
    const o = await open(req, reply, true);
    if (!o) return reply;
    if (overAppCap(reply, o.id)) return reply;
    const res: ServerResponse = reply.raw;
    reply.hijack();
    const headers: Record<string, string> = {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    };
    for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string') headers[k] = v;
    const refused = ctx.admission();
    if (!refused) {
      // The stream: on the socket itself when Node's HTTP server lets go of it (http-detach.ts).
      releaseFastify(res);
      const socket = takeSocket(req.raw, res);
      let sink: SseSink = res;
      if (socket) {
        let head = 'HTTP/1.1 200 OK\r\n';
        for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
        socket.write(`${head}connection: close\r\n\r\nretry: ${SSE_RETRY_MS}\n\n`);
        sink = socket;
      } else {
        res.writeHead(200, headers);
        res.write(`retry: ${SSE_RETRY_MS}\n\n`);
      }
      const conn = new SseConn(sink, ctx.sse);
      const session = new Session(deps, sseTransport as Transport<unknown>, conn, remote(req));
      conn.peer = session;
      attachSse(conn);
      session.start();
      await session.accept(o.id, o.cursors, o.topics);
      return;
    }
    res.writeHead(200, headers);
    if (refused.code === CloseCode.Draining) {
      const delayMs = spread();
      res.end(
        `retry: ${delayMs}\n${event('reconnect', { type: 'reconnect', delayMs, reason: refused.reason })}${event('error', refused)}`,
      );
      return;
    }
    // Refused by the node cap or the accept rate.
    res.end(`retry: ${SSE_RETRY_MS}\n\n${event('error', refused)}`);
  });

  app.get(POLL_PATH, async (req, reply) => {
    const o = await open(req, reply, false);
    if (!o) return reply;
    const w = param(req.query as Query, 'wait');
    if (w instanceof Error || (w !== undefined && !/^\d{1,6}$/.test(w)))
      return httpError(reply, HttpError.BadRequest, 'wait must be a whole number of seconds');
    const waitMs = Math.min(w === undefined ? DEFAULT_WAIT_S * 1000 : Number(w) * 1000, ctx.pollMaxWaitMs);
    if (overAppCap(reply, o.id)) return reply;
    const refused = ctx.admission();
    if (refused?.code === CloseCode.Draining)
      return reply.header('cache-control', 'no-store').send({
        cursors: encodeCursors(o.cursors),
        frames: [{ type: 'reconnect', delayMs: spread(), reason: refused.reason }],
      });
    if (refused) return httpError(reply, HttpError.NodeBusy, refused.reason);
    const res: ServerResponse = reply.raw;
    for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string') res.setHeader(k, v);
    reply.hijack();
    const conn = new PollConn(res, deps.limits.replayBatch);
    const session = new Session(deps, pollTransport as Transport<unknown>, conn, remote(req));
    conn.peer = session;
    releaseFastify(res);
    attachPoll(conn);
    session.start();
    if (!(await session.accept(o.id, o.cursors, o.topics))) return;
    await session.replayed;
    conn.hold(waitMs);
  });

  app.post(
    ACKS_PATH,
    {
      bodyLimit: ACKS_BODY_BYTES,
      errorHandler: (err: Error & { statusCode?: number }, _req, reply) => {
        const s = err.statusCode ?? 500;
        if (s === 415)
          return httpError(reply, HttpError.UnsupportedMediaType, 'the body must be application/json');
        if (s === 413)
          return httpError(reply, HttpError.PayloadTooLarge, `the body is over ${ACKS_BODY_BYTES} bytes`);
        if (s === 400) return httpError(reply, HttpError.BadRequest, 'the body is not valid JSON');
        // A Redis outage is 503 with Retry-After, as on the API: the device keeps its cursors and
        // acks again (docs/protocol.md); anything else is a server fault.
        const down = s === 503 || isRedisOutage(err);
        deps.log[down ? 'warn' : 'error']({ err: err.message }, 'ack failed');
        return httpError(reply, down ? HttpError.RedisUnavailable : HttpError.Internal, 'ack failed');
      },
    },
    async (req, reply) => {
      if (!cors(req, reply)) return reply;
      const id = await authenticate(req, reply);
      if (!id) return reply;
      if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? ''))
        return httpError(reply, HttpError.UnsupportedMediaType, 'the body must be application/json');
      const body = req.body as unknown;
      if (typeof body !== 'object' || body === null || Array.isArray(body) || !('cursors' in body))
        return httpError(reply, HttpError.BadRequest, 'the body must be {"cursors": {...} or "<encoded>"}');
      const extra = Object.keys(body).find((k) => k !== 'cursors');
      if (extra !== undefined)
        return httpError(
          reply,
          HttpError.BadRequest,
          `unknown property ${JSON.stringify(extra.slice(0, 64))}`,
        );
      const raw = (body as { cursors: unknown }).cursors;
      let cursors: Cursors;
      if (typeof raw === 'string') {
        const d = decodeCursors(raw);
        if (!d.ok) return httpError(reply, HttpError.BadRequest, `cursors: ${d.reason}`);
        cursors = d.cursors;
      } else {
        const p = raw === undefined ? 'cursors must be an object' : parseCursors(raw);
        if (typeof p === 'string') return httpError(reply, HttpError.BadRequest, p);
        cursors = p;
      }
      const r = await ctx.acks.ack(id, cursors);
      if (!r.ok) return reply.code(r.status).send({ code: r.code, message: r.message });
      return reply.code(204).send();
    },
  );

  // The token cookie (token-cookie.ts): set from a verified `Authorization: Bearer` token for
  // the rest of its life, or cleared.
  app.post(COOKIE_PATH, async (req, reply) => {
    if (!cors(req, reply)) return reply;
    const id = await authenticate(req, reply, true);
    if (!id) return reply;
    const maxAgeS = Math.max(0, Math.floor((id.exp - Date.now()) / 1000));
    return reply
      .code(204)
      .header('cache-control', 'no-store')
      .header(
        'set-cookie',
        setTokenCookie(
          req.headers.authorization!.slice(7).trim(),
          maxAgeS,
          secureRequest(req, ctx.cookieSecure === true),
        ),
      )
      .send();
  });
  app.delete(COOKIE_PATH, async (req, reply) => {
    if (!cors(req, reply)) return reply;
    return reply
      .code(204)
      .header('cache-control', 'no-store')
      .header('set-cookie', clearTokenCookie(secureRequest(req, ctx.cookieSecure === true)))
      .send();
  });

  // Preflight of a browser on another origin (Authorization and a JSON body are not "simple").
  app.options('/v1/*', async (req, reply) => {
    if (!cors(req, reply)) return reply;
    return reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST, DELETE')
      .header('access-control-allow-headers', 'authorization, content-type, last-event-id')
      .header('access-control-max-age', '600')
      .send();
  });
}
