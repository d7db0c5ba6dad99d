/**
 * The load generator's Server-Sent Events client: a GET over a raw `net` socket (no `http` agent
 * or EventSource object, so one process holds thousands of them as it holds WebSocket clients),
 * and a small bounded parser: the response head, `Transfer-Encoding: chunked` (Herald's Node
 * server) or a plain stream (Nchan), and the SSE lines (`event:`, `data:`, `id:`, comments).
 *
 * Bytes are decoded as latin1: one char per byte, so a chunk or packet boundary never splits a
 * character; the benchmark's payloads and both servers' event framing are ASCII.
 */
import net from 'node:net';

/** Bound on the response head (status line + headers). */
export const MAX_HEAD_CHARS = 16 * 1024;
/** Bound on one line and on one event's `data` (Herald's frames are at most a few KiB). */
export const MAX_LINE_CHARS = 64 * 1024;
/** Bound on a chunk-size line (hex digits and extensions). */
const MAX_SIZE_LINE_CHARS = 64;

export interface SseRequest {
  host: string;
  port: number;
  /** Path and query. */
  path: string;
  /** Extra request header lines, each ending in CRLF (e.g. `Authorization: Bearer ...\r\n`). */
  headerLines: string;
  localAddress?: string;
}

export interface SseHandlers {
  /** The response head arrived (status and lower-cased header names). */
  onHead(status: number, headers: Map<string, string>): void;
  /** One dispatched event: its `event:` name (default `message`), `data:` lines joined by LF, last `id:`. */
  onEvent(type: string, data: string, id: string): void;
  /** The stream ended (once): `sse:end` for a server end, else the error or parse failure. */
  onClose(reason: string): void;
}

export class SseClient {
  readonly sock: net.Socket;
  private headText = '';
  private headDone = false;
  private chunked = false;
  /** Data bytes left in the current chunk. */
  private chunkLeft = 0;
  /** CR LF bytes left to skip after a chunk's data. */
  private crlfLeft = 0;
  private sizeLine = '';
  private line = '';
  private type = '';
  private data = '';
  private hasData = false;
  private id = '';
  private done = false;

  constructor(
    req: SseRequest,
    private readonly h: SseHandlers,
  ) {
    const text =
      `GET ${req.path} HTTP/1.1\r\nHost: ${req.host}:${req.port}\r\n` +
      `Accept: text/event-stream\r\nCache-Control: no-cache\r\n${req.headerLines}\r\n`;
    this.sock = net.connect({ host: req.host, port: req.port, localAddress: req.localAddress });
    this.sock.setNoDelay(true);
    this.sock.on('connect', () => this.sock.write(text));
    this.sock.on('data', (b: Buffer) => this.onData(b));
    this.sock.on('error', (err: NodeJS.ErrnoException) =>
      this.close(`error:${err.code ?? err.message.slice(0, 60)}`),
    );
    this.sock.on('close', () => this.close('sse:end'));
  }

  private close(reason: string): void {
    if (this.done) return;
    this.done = true;
    if (!this.sock.destroyed) this.sock.destroy();
    this.h.onClose(reason);
  }

  private onData(b: Buffer): void {
    if (this.done) return;
    let start = 0;
    if (!this.headDone) {
      const prior = this.headText.length;
      this.headText += b.toString('latin1');
      const end = this.headText.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.headText.length > MAX_HEAD_CHARS) this.close('sse:head-too-large');
        return;
      }
      this.headDone = true;
      start = end + 4 - prior;
      const lines = this.headText.slice(0, end).split('\r\n');
      this.headText = '';
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? Number.NaN);
      const headers = new Map<string, string>();
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
      }
      this.chunked = /\bchunked\b/i.test(headers.get('transfer-encoding') ?? '');
      this.h.onHead(Number.isFinite(status) ? status : 0, headers);
      if (this.done || start >= b.length) return;
    }
    if (!this.chunked) {
      this.text(b.toString('latin1', start));
      return;
    }
    let i = start;
    while (i < b.length && !this.done) {
      if (this.chunkLeft > 0) {
        const n = Math.min(this.chunkLeft, b.length - i);
        this.text(b.toString('latin1', i, i + n));
        i += n;
        this.chunkLeft -= n;
        if (this.chunkLeft === 0) this.crlfLeft = 2;
      } else if (this.crlfLeft > 0) {
        i++;
        this.crlfLeft--;
      } else {
        const nl = b.indexOf(10, i);
        const part = b.toString('latin1', i, nl < 0 ? b.length : nl);
        this.sizeLine += part;
        if (this.sizeLine.length > MAX_SIZE_LINE_CHARS) {
          this.close('sse:bad-chunk');
          return;
        }
        if (nl < 0) return;
        i = nl + 1;
        const size = Number.parseInt(this.sizeLine, 16);
        this.sizeLine = '';
        if (!Number.isFinite(size) || size < 0) {
          this.close('sse:bad-chunk');
          return;
        }
        if (size === 0) {
          this.close('sse:end');
          return;
        }
        this.chunkLeft = size;
      }
    }
  }

  /** Splits body text into lines (LF or CRLF; a lone CR, which neither server sends, is not a break). */
  private text(s: string): void {
    let from = 0;
    while (!this.done) {
      const nl = s.indexOf('\n', from);
      if (nl < 0) {
        if (this.line.length + s.length - from > MAX_LINE_CHARS) {
          this.close('sse:line-too-long');
          return;
        }
        this.line += s.slice(from);
        return;
      }
      let l = this.line.length > 0 ? this.line + s.slice(from, nl) : s.slice(from, nl);
      this.line = '';
      from = nl + 1;
      if (l.charCodeAt(l.length - 1) === 13) l = l.slice(0, -1);
      this.field(l);
    }
  }

  private field(l: string): void {
    if (l.length === 0) {
      if (this.hasData) this.h.onEvent(this.type || 'message', this.data, this.id);
      this.type = '';
      this.data = '';
      this.hasData = false;
      return;
    }
    if (l.charCodeAt(0) === 58 /* ':' comment (`: hb`, Nchan's `: hi`) */) return;
    const c = l.indexOf(':');
    const name = c < 0 ? l : l.slice(0, c);
    let v = c < 0 ? '' : l.slice(c + 1);
    if (v.charCodeAt(0) === 32) v = v.slice(1);
    if (name === 'data') {
      this.data = this.hasData ? `${this.data}\n${v}` : v;
      this.hasData = true;
      if (this.data.length > MAX_LINE_CHARS) this.close('sse:event-too-large');
    } else if (name === 'event') this.type = v;
    else if (name === 'id') this.id = v;
    // `retry:` and unknown fields are ignored (a benchmark client does not reconnect).
  }
}
