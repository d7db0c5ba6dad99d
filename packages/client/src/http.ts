// The HTTP transports (docs/protocol.md, SSE and long-poll): Server-Sent Events over a streamed
// `fetch`, long-poll, and acks over `POST /v1/acks`. Each is wrapped as a WebSocketLike link, so the
// client's one state machine (hello, welcome, cursors, dedupe, acks, liveness, backoff) runs the
// same whatever the transport: the link turns the client's frames into HTTP and the node's answers
// back into frames.
//
// Written as closures rather than classes: the browser bundle mangles local names but not
// property names (measured on the whole browser bundle: 9,381 bytes gzipped with a class,
// 8,925 with closures; scripts/bundle.mjs has the budget).
import { type Cursors, encodeCursors, MAX_ENCODED_CURSORS, topicStream } from '@herald/protocol';
import { CLOSE_ABNORMAL, CloseCode } from './close-codes.js';
import type { WebSocketLike } from './socket.js';

export type HttpTransport = 'sse' | 'poll';

/** Longest SSE line or event (its data lines together) accepted, in characters; past it the stream is dropped. */
export const MAX_SSE_EVENT = 1 << 20;

export interface SseEvent {
  event: string;
  data: string;
  /** The `id:` field's value when the event had one. */
  id?: string;
}

export interface SseParser {
  push(chunk: string): void;
  /** The last `retry:` value, in ms. */
  retry?: number;
}

/**
 * An incremental `text/event-stream` parser (the WHATWG rules: `\n`, `\r\n` and `\r` end lines,
 * one space after the colon is dropped, an empty line dispatches, `:` starts a comment, `retry:`
 * takes digits only, an event without data is not dispatched). Chunks may split lines, and a
 * `\r\n` pair, anywhere. Bounded: a line or an event over `max` characters throws.
 */
export function sseParser(
  onEvent: (e: SseEvent) => void,
  onComment: () => void = () => undefined,
  max = MAX_SSE_EVENT,
): SseParser {
  let buf = '';
  let event = '';
  let data: string[] | undefined;
  let size = 0;
  let id: string | undefined;
  const p: SseParser = {
    push(chunk) {
      buf += chunk;
      const re = /\r\n|\r|\n/g;
      let start = 0;
      for (;;) {
        const m = re.exec(buf);
        // A `\r` at the end may be the first half of `\r\n`: it waits for the next chunk.
        if (!m || (m[0] === '\r' && re.lastIndex === buf.length)) break;
        const line = buf.slice(start, m.index);
        start = re.lastIndex;
        if (!line) {
          if (data)
            onEvent({
              event: event || 'message',
              data: data.join('\n'),
              ...(id === undefined ? {} : { id }),
            });
          event = '';
          data = undefined;
          id = undefined;
          size = 0;
        } else if (line[0] === ':') onComment();
        else {
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? '' : line.slice(c + 1);
          if (v[0] === ' ') v = v.slice(1);
          if (field === 'data') {
            size += v.length + 1;
            if (size > max) throw new Error(`an SSE event over ${max} characters`);
            if (data) data.push(v);
            else data = [v];
          } else if (field === 'event') event = v;
          else if (field === 'id' && !v.includes('\0')) id = v;
          else if (field === 'retry' && /^\d+$/.test(v)) p.retry = +v;
        }
      }
      buf = buf.slice(start);
      if (buf.length > max) throw new Error(`an SSE line over ${max} characters`);
    },
  };
  return p;
}

/** What the client gives a link: where, who, from where, which topics, and how long a poll may wait. */
export interface HttpLinkOptions {
  /** The push node's base URL, `http(s)://host/v1/`. */
  base: string;
  token: string;
  cursors: () => Cursors;
  topics: () => string[];
  /** Long-poll hold, in seconds. */
  waitS: number;
  /** Called on an SSE `refresh` event (the token expires soon). */
  onRefresh: () => void;
}

/** How long a failed ack POST waits before it is retried (with what came in meanwhile). */
const ACK_RETRY_MS = 1000;

type Streams = Record<string, { cursor: number }>;
type Listener = (ev: never) => void;

/**
 * One SSE stream or long-poll loop to a push node, seen by the client as a socket: `open` when the
 * node accepted the request, `message` per frame, `close` with a WebSocket-style code when it
 * ends (4001/4003 for a refused token, 4000 for a refused request, 1006 for anything else, so
 * `auto` moves on to the next transport). Frames the client sends: `ack` (POSTed, coalesced, at
 * most one request in flight), `subscribe`/`unsubscribe`/`refresh` (the request is made again with
 * the new topics or token, from the client's cursors), `hello` and `ping` (nothing to send: the
 * request carries the token and cursors; heartbeats and answers count as traffic).
 */
export function httpLink(kind: HttpTransport, o: HttpLinkOptions): WebSocketLike {
  const sse = kind === 'sse';
  /**
   * The client's cursors, encoded within the nodes' 8 KiB bound: a `hello` may carry 256 cursors
   * of long topic names, a URL not. The last ones go first (the client ranks its own streams
   * and wanted topics first); a stream left out resumes from its stored cursor.
   */
  const current = (): string => {
    const c = o.cursors();
    const names = Object.keys(c);
    let e = encodeCursors(c);
    while (e.length > MAX_ENCODED_CURSORS) {
      delete c[names.pop()!];
      e = encodeCursors(c);
    }
    return e;
  };
  const on: Record<string, Listener[]> = {};
  const fire = (type: string, ev: unknown): void => {
    for (const f of on[type] ?? []) (f as (e: unknown) => void)(ev);
  };
  const frame = (f: object): void => {
    if (link.readyState === 1) fire('message', { data: JSON.stringify(f) });
  };
  /** Aborts everything (the stream and acks) once the link is closed. */
  const stop = new AbortController();
  let token = o.token;
  const topics = new Set(o.topics());
  /** Topics changed since the last request, reported as `subscribed`/`unsubscribed` from its answer. */
  let changed = new Set<string>();
  let req: AbortController | undefined;
  let acks = new Map<string, number>();
  let acking: Promise<void> | undefined;

  const closed = (code: number, reason: string): void => {
    if (link.readyState === 3) return;
    link.readyState = 3;
    stop.abort();
    fire('close', { code, reason });
  };

  const report = (pending: Set<string>, streams: Streams): void => {
    for (const topic of pending)
      frame(
        topics.has(topic)
          ? { type: 'subscribed', topic, cursor: streams[topicStream(topic)]?.cursor ?? 0 }
          : { type: 'unsubscribed', topic },
      );
  };

  const postAcks = async (): Promise<void> => {
    while (acks.size > 0 && link.readyState < 3) {
      const batch = acks;
      acks = new Map();
      try {
        const res = await fetch(new URL('acks', o.base), {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ cursors: Object.fromEntries(batch) }),
          signal: stop.signal,
        });
        if (res.status > 499 || res.status === 429) throw 0;
        // A refused ack (a seq past the stream's end, a topic the token does not allow) is not
        // retried; it is reported as on WebSocket, as an `error` frame with the node's code.
        const e =
          res.status > 399 && ((await res.json().catch(() => ({}))) as { code?: string; message?: string });
        if (e)
          frame({
            type: 'error',
            code: String(e.code).slice(7).toLowerCase(),
            message: `ack refused: ${e.message}`,
          });
        else await res.body?.cancel();
      } catch {
        // Retried with whatever came in meanwhile (cumulative: the highest seq per stream wins).
        for (const [s, n] of batch) if (n > (acks.get(s) ?? 0)) acks.set(s, n);
        if (link.readyState > 1) break;
        await new Promise((r) => setTimeout(r, ACK_RETRY_MS));
      }
    }
    acking = undefined;
  };

  /**
   * A refused request. Without a Herald error code it is not the node's answer (a proxy's 403 or
   * 502), and a 404 is a node without this route: a transport failure (1006, so `auto` moves on).
   * Else the node's: 401 a refused token (4001, or 4003 when expired), 400/403 a refused request
   * (4000), anything else (503 busy, Redis down) a node failure retried with backoff (4013).
   */
  const refused = async (res: Response): Promise<void> => {
    const body = (await res.json().catch(() => ({}))) as { code?: unknown; message?: unknown };
    const code = typeof body.code === 'string' ? body.code : '';
    const s = res.status;
    closed(
      !code.startsWith('HERALD_') || s === 404
        ? CLOSE_ABNORMAL
        : s === 401
          ? code === 'HERALD_TOKEN_EXPIRED'
            ? CloseCode.TokenExpired
            : CloseCode.Unauthorized
          : s === 400 || s === 403
            ? CloseCode.BadFrame
            : CloseCode.Capacity,
      `HTTP ${s}${code && ` ${code}: ${String(body.message)}`}`,
    );
  };

  /** Reads one SSE stream until it ends; the welcome of a repeated request becomes `subscribed` frames. */
  const stream = async (res: Response, pending: Set<string>, first: boolean): Promise<void> => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let ended: [number, string] | undefined;
    const parser = sseParser(
      (e) => {
        if (e.event === 'refresh') o.onRefresh();
        else if (e.event === 'error' || (e.event === 'welcome' && !first)) {
          // Parsed here only: notifications go to the client as text, parsed once there.
          const d = JSON.parse(e.data) as { code: number; reason: string; streams?: Streams };
          if (d.streams) report(pending, d.streams);
          else ended = [d.code, d.reason];
        } else fire('message', { data: e.data });
      },
      // The node's heartbeat comment shows it alive (the client's liveness counts frames).
      () => frame({ type: 'pong' }),
    );
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(value);
      if (ended) break;
    }
    reader.cancel().catch(() => undefined);
    if (link.readyState > 1) return;
    if (ended) return closed(...ended);
    // The node ended the stream on purpose: come back after its `retry:` (as EventSource would).
    if (parser.retry === undefined) closed(CLOSE_ABNORMAL, 'the stream ended');
    else frame({ type: 'reconnect', delayMs: parser.retry, reason: 'stream ended' });
  };

  /**
   * Requests until the link closes: one SSE stream (made again after a topic or token change),
   * or polls one after another from the cursors the last answer gave.
   */
  const loop = async (): Promise<void> => {
    let cursors = current();
    let first = true;
    while (link.readyState < 2) {
      const r = new AbortController();
      req = r;
      const pending = changed;
      changed = new Set();
      try {
        const u = new URL(kind, o.base);
        const q = u.searchParams;
        if (topics.size > 0) q.set('topics', [...topics].join(','));
        q.set('cursors', cursors);
        if (!sse) q.set('wait', String(first || pending.size > 0 ? 0 : o.waitS));
        // The token: in a page, in the query (as EventSource does: a GET without headers needs no
        // CORS preflight, whose cache would miss on every new cursors URL); elsewhere in a header,
        // out of URLs that proxies log.
        const page = 'document' in globalThis;
        if (page) q.set('token', token);
        const res = await fetch(u, {
          signal: r.signal,
          headers: page ? {} : { authorization: `Bearer ${token}` },
        });
        if (res.status !== 200) return await refused(res);
        const type = res.headers.get('content-type') ?? '';
        if (!type.includes(sse ? 'text/event-stream' : 'json'))
          return closed(CLOSE_ABNORMAL, `HTTP 200 ${type}`);
        if (!link.readyState) {
          link.readyState = 1;
          fire('open', {});
        }
        if (sse) {
          await stream(res, pending, first);
          cursors = current();
        } else {
          const body = (await res.json()) as { cursors: string; frames: object[] };
          cursors = body.cursors;
          const decoded = JSON.parse(atob(cursors.slice(2).replace(/-/g, '+').replace(/_/g, '/'))) as Cursors;
          const streams: Streams = {};
          for (const s in decoded) streams[s] = { cursor: decoded[s]! };
          // Long-poll has no welcome: the first answer's cursors make one (checked by the client as any frame).
          if (first) frame({ type: 'welcome', node: '', device: '', user: '', heartbeatMs: 0, streams });
          else report(pending, streams);
          // Any answer shows the node alive.
          frame({ type: 'pong' });
          for (const f of body.frames) frame(f);
        }
      } catch (err) {
        if (link.readyState > 1) return;
        if (!r.signal.aborted) return closed(CLOSE_ABNORMAL, String(err));
        // Aborted for a topic or token change: ask again, from the client's cursors.
        for (const t of pending) changed.add(t);
        if (sse) cursors = current();
      }
      first = false;
    }
  };

  const link = {
    readyState: 0,
    addEventListener(type: string, f: Listener) {
      on[type] = [...(on[type] ?? []), f];
    },
    send(text: string) {
      const f = JSON.parse(text) as {
        type: string;
        stream: string;
        seq: number;
        topic: string;
        token: string;
      };
      if (f.type === 'ack') {
        if (f.seq > (acks.get(f.stream) ?? 0)) acks.set(f.stream, f.seq);
        acking ??= Promise.resolve().then(postAcks);
      } else if (f.type === 'refresh') {
        token = f.token;
        if (sse) req?.abort();
      } else if (f.type.endsWith('subscribe') && topics.has(f.topic) !== (f.type === 'subscribe')) {
        topics[f.type === 'subscribe' ? 'add' : 'delete'](f.topic);
        changed.add(f.topic);
        req?.abort();
      }
    },
    /**
     * Ends the stream or poll; pending acks are still POSTed and the link closes when they are
     * answered. A second `close()` does not wait (the client's close wait is over).
     */
    close(code = 1000, reason = '') {
      if (link.readyState > 1) return closed(code, reason);
      link.readyState = 2;
      req?.abort();
      void (acking ?? Promise.resolve()).finally(() => closed(code, reason));
    },
  };
  setTimeout(loop, 0);
  return link;
}
