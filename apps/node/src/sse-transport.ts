import { corkForTick } from './cork.js';
import { Gather } from './sse-gather.js';
import type { Encoding, Peer, SharedFrame, Transport } from './transport.js';

/** A stream closed by the server is cut after this long if the peer does not take its last bytes. */
const END_GRACE_MS = 5000;
/** An `refresh` event is sent once the token expires within this long (docs/protocol.md). */
export const REFRESH_BEFORE_MS = 60_000;

/** What the SSE transport asks of its session (a `Session`; an interface, so no import circle). */
export interface SsePeer extends Peer {
  readonly identity: { exp: number } | undefined;
  cursorsText(moving?: string): string;
}

/**
 * Where a stream's bytes go: the TCP socket taken from the HTTP server (http-detach.ts), or the
 * `ServerResponse` when it could not be taken. Both are Node writables with these members.
 */
export interface SseSink {
  write(chunk: string | Buffer): boolean;
  end(chunk: string): unknown;
  destroy(): unknown;
  readonly writableLength: number;
  readonly writableFinished: boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  on(event: 'close', l: () => void): unknown;
  on(event: 'error', l: (err: Error) => void): unknown;
}

/**
 * The handle of one SSE connection: where the events are written (gathered per tick, sse-gather.ts),
 * and its session (the `id:` of an event carries the session's cursors).
 */
export class SseConn extends Gather {
  peer: SsePeer | undefined = undefined;
  /** The `refresh` event was sent for the current token. */
  refreshSent = false;
  ended = false;
  /**
   * The `id:` line of this connection's events up to the moving stream's seq: `id: 2.` and the
   * cursors of every other stream, then `<idStream>:`, as bytes. Kept while only `idStream`
   * moves (a broadcast, a topic's burst), rebuilt when another stream moves, which is the only
   * way the other cursors change.
   */
  private idHead: Buffer | undefined = undefined;
  private idStream: string | undefined = undefined;

  constructor(
    readonly res: SseSink,
    /** The node's open streams (their heartbeat), which this one is in until it ends. */
    private readonly open: Set<SseConn>,
  ) {
    super();
    open.add(this);
  }

  protected get sink(): SseSink {
    return this.res;
  }

  /** The response closed (either end). */
  closed(): void {
    this.ended = true;
    this.discard();
    this.open.delete(this);
    this.peer?.ended('peer');
  }

  /** Adds the `id:` line, and the blank line that ends the event, of an event at `stream`'s `seq`. */
  putId(stream: string, seq: number): void {
    if (stream !== this.idStream || this.idHead === undefined) {
      this.idHead = Buffer.from(`id: ${this.peer?.cursorsText(stream) ?? ''}`, 'latin1');
      this.idStream = stream;
    }
    this.put(this.idHead);
    this.putSeq(seq);
  }

  /** The `id:` line of every stream's cursor (welcome); the next event rebuilds its head. */
  fullIdLine(): string {
    this.idStream = undefined;
    return `id: ${this.peer?.cursorsText() ?? ''}\n`;
  }
}

const kConn = Symbol('herald.sse');

type Tagged = SseSink & { [kConn]: SseConn };

// Listeners shared by every stream (`this` is the socket or response): no closures per stream.
function onClose(this: SseSink): void {
  (this as Tagged)[kConn].closed();
}
function onError(this: SseSink, err: Error): void {
  (this as Tagged)[kConn].peer?.failed(err);
}

/** Routes a response's close and errors to its stream, through the shared listeners above. */
export function attachSse(c: SseConn): void {
  (c.res as Tagged)[kConn] = c;
  c.res.on('close', onClose);
  c.res.on('error', onError);
}

/** The `type` of a server frame's JSON text: every frame is built with `type` first. */
export function frameType(text: string): string {
  if (!text.startsWith('{"type":"')) return 'message';
  const end = text.indexOf('"', 9);
  return end < 0 ? 'message' : text.slice(9, end);
}

/** `data:` lines of an event; JSON text has no raw newline, but a line break must never end an event. */
function event(type: string, text: string): string {
  const data = text.includes('\n') ? text.replace(/\r?\n/g, '\ndata: ') : text;
  return `event: ${type}\ndata: ${data}\n\n`;
}

/**
 * The SSE encoding of a shared notification frame, as bytes made once for every stream it goes
 * to: the event without its closing blank line, which each connection's `id:` line (ASCII) then
 * adds. Converting the event text per write was the largest item of the SSE broadcast profile
 * (writeUtf8String, BENCHMARKS.md SSE section).
 */
const SSE_NOTIFICATION: Encoding<Buffer> = {
  encode: (text) => Buffer.from(event('notification', text).slice(0, -1)),
};

/** The `retry:` hint of a `reconnect` frame: its `delayMs`. */
function retryOf(text: string): number {
  try {
    const d = (JSON.parse(text) as { delayMs?: unknown }).delayMs;
    return typeof d === 'number' && d >= 0 ? Math.floor(d) : 1000;
  } catch {
    return 1000;
  }
}

function end(c: SseConn): void {
  if (!c.res.writableFinished) c.res.destroy();
}

/**
 * Server-Sent Events (docs/protocol.md, "Server-Sent Events"): a frame is an event named after
 * its type with the frame's JSON as `data:`; a notification or gap carries `id:` with the encoded
 * cursors of every stream once it is read, so the browser's `Last-Event-ID` resumes exactly; a
 * close is an `error` event with the close code and reason, then the end of the response.
 */
export const sseTransport: Transport<SseConn> = {
  kind: 'sse',
  write(c: SseConn, frame: string | SharedFrame, stream?: string, seq?: number): void {
    if (c.ended) return;
    corkForTick(c);
    if (typeof frame !== 'string') {
      c.put(frame.as(SSE_NOTIFICATION));
      if (stream === undefined || seq === undefined) c.put('\n', true);
      else c.putId(stream, seq);
      return;
    }
    const type = frameType(frame);
    let out = event(type, frame);
    if (type === 'reconnect') out = `retry: ${retryOf(frame)}\n${out}`;
    else if (type === 'welcome') out = c.fullIdLine() + out;
    // A gap's `id:` ends the event: the text goes first, then the id line and the blank line.
    if (stream === undefined || seq === undefined) c.put(out);
    else {
      c.put(out.slice(0, -1));
      c.putId(stream, seq);
    }
  },
  buffered(c: SseConn): number {
    return c.res.writableLength + c.pending;
  },
  close(c: SseConn, code: number, reason: string): void {
    if (c.ended) return;
    c.uncork();
    c.ended = true;
    c.res.end(event('error', JSON.stringify({ code, reason })));
    setTimeout(end, END_GRACE_MS, c).unref();
  },
  terminate(c: SseConn): void {
    c.ended = true;
    c.res.destroy();
  },
  ping(c: SseConn): void {
    // The heartbeat comment is written by `sseBeat`; a write that does not drain is caught by
    // the slow-consumer bound, a dead peer by the socket's error.
    c.peer?.heard();
  },
};

/**
 * The SSE heartbeat for every stream of a node: a `: hb` comment (below common proxy idle
 * timeouts of 30-60 s), and a `refresh` event once the token expires within a minute.
 */
export function sseBeat(conns: Iterable<SseConn>, now = Date.now()): void {
  for (const c of conns) {
    if (c.ended) continue;
    let out = ': hb\n\n';
    const exp = c.peer?.identity?.exp;
    if (exp !== undefined && !c.refreshSent && exp - now < REFRESH_BEFORE_MS) {
      c.refreshSent = true;
      out += event('refresh', JSON.stringify({ exp: Math.floor(exp / 1000) }));
    }
    c.put(out, true);
  }
}
