import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Cursors, decodeCursors } from '@herald/protocol';
import { WebSocketServer } from 'ws';
import { FakeSocket, type Frame, Signal } from './fake-node.js';

const WAIT_MS = 3000;

/** A request's query: topics, cursors (decoded), token, wait. */
export interface Query {
  topics: string[];
  cursors: Cursors | undefined;
  token: string | null;
  wait: string | null;
}

function query(req: IncomingMessage): Query {
  const u = new URL(req.url ?? '/', 'http://x');
  const enc = u.searchParams.get('cursors');
  const d = enc === null ? undefined : decodeCursors(enc);
  if (d && !d.ok) throw new Error(`the client sent bad cursors: ${d.reason}`);
  return {
    topics: u.searchParams.get('topics')?.split(',') ?? [],
    cursors: d?.cursors,
    token: u.searchParams.get('token'),
    wait: u.searchParams.get('wait'),
  };
}

/** One `GET /v1/sse` as the scripted node sees it; the test writes the stream. */
export class SseStream {
  readonly q: Query;
  closed = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly signal: Signal,
  ) {
    this.q = query(req);
    res.on('close', () => {
      this.closed = true;
      signal.wake();
    });
  }

  /** Starts the stream (200, event-stream headers), optionally with a `retry:` line. */
  open(retryMs?: number): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (retryMs !== undefined) this.raw(`retry: ${retryMs}\n\n`);
    else this.res.flushHeaders();
  }

  raw(text: string): void {
    this.res.write(text);
  }

  event(event: string, data: unknown, id?: string): void {
    const json = typeof data === 'string' ? data : JSON.stringify(data);
    this.raw(`event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${json}\n\n`);
  }

  /** Opens the stream and sends the welcome. */
  welcome(streams: Record<string, number> = { inbox: 0 }, retryMs?: number): void {
    this.open(retryMs);
    const s: Record<string, { cursor: number }> = {};
    for (const [k, v] of Object.entries(streams)) s[k] = { cursor: v };
    this.event('welcome', {
      type: 'welcome',
      node: 'fake-http',
      device: 'd1',
      user: 'u1',
      heartbeatMs: 15000,
      streams: s,
    });
  }

  notify(stream: string, seq: number, id = `${stream}-${seq}`): void {
    this.event(
      'notification',
      { type: 'notification', stream, seq, id, ts: Date.now(), data: { seq } },
      `1.${stream}-${seq}`,
    );
  }

  /** Refuses the request before any stream, as the node does. */
  refuse(status: number, code: string, message = code): void {
    this.res.writeHead(status, { 'content-type': 'application/json' });
    this.res.end(JSON.stringify({ code, message }));
  }

  waitClosed(timeoutMs = WAIT_MS): Promise<true> {
    return this.signal.until(() => this.closed, 'the SSE request to close', timeoutMs);
  }
}

/** One `GET /v1/poll` held until the test answers it. */
export class Poll {
  readonly q: Query;
  closed = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    signal: Signal,
  ) {
    this.q = query(req);
    res.on('close', () => {
      this.closed = true;
      signal.wake();
    });
  }

  answer(cursors: string, frames: Frame[] = []): void {
    this.res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    this.res.end(JSON.stringify({ cursors, frames }));
  }
}

export interface AckCall {
  body: unknown;
  authorization: string | undefined;
}

/**
 * A scripted push node on 127.0.0.1 speaking the HTTP transports (SSE, long-poll, acks) and,
 * unless `refuseUpgrades` is set (a proxy that answers upgrades with that status), WebSocket.
 */
export class FakeHttpNode {
  readonly streams: SseStream[] = [];
  readonly polls: Poll[] = [];
  readonly acks: AckCall[] = [];
  readonly sockets: FakeSocket[] = [];
  /** Upgrade requests seen. */
  upgrades = 0;
  /** Status a refused upgrade gets; undefined: upgrades are accepted. */
  refuseUpgrades: number | undefined;
  /** Upgrades are held unanswered (a stalled node). */
  stallUpgrades = false;
  private readonly heldUpgrades: Duplex[] = [];
  /** Answers GET /v1/sse with this status and an HTML page (a proxy in the way). */
  sseBlocked: number | undefined;
  /** Acks are answered only when released (to see coalescing). */
  holdAcks = false;
  /** Acks are refused with this node error (status, code). */
  refuseAcks: [number, string] | undefined;
  /** Most ack requests in flight at once. */
  maxAcksInFlight = 0;
  readonly signal = new Signal();
  private inFlight = 0;
  private held: (() => void)[] = [];
  private taken = { sse: 0, poll: 0, ws: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  static async start(): Promise<FakeHttpNode> {
    const server = createServer();
    const wss = new WebSocketServer({ noServer: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const node = new FakeHttpNode(server, (server.address() as AddressInfo).port);
    server.on('request', (req, res) => node.onRequest(req, res));
    server.on('upgrade', (req, socket, head) => {
      node.upgrades++;
      node.signal.wake();
      if (node.stallUpgrades) {
        node.heldUpgrades.push(socket); // unanswered; destroyed by stop()
        return;
      }
      if (node.refuseUpgrades !== undefined) {
        socket.end(
          `HTTP/1.1 ${node.refuseUpgrades} Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        node.sockets.push(new FakeSocket(ws));
        node.signal.wake();
      });
    });
    return node;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/v1/sse') {
      if (this.sseBlocked !== undefined) {
        res.writeHead(this.sseBlocked, { 'content-type': 'text/html' });
        res.end('<html>blocked by policy</html>');
        return;
      }
      this.streams.push(new SseStream(req, res, this.signal));
    } else if (req.method === 'GET' && path === '/v1/poll') {
      this.polls.push(new Poll(req, res, this.signal));
    } else if (req.method === 'POST' && path === '/v1/acks') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => {
        this.inFlight++;
        this.maxAcksInFlight = Math.max(this.maxAcksInFlight, this.inFlight);
        this.acks.push({ body: JSON.parse(body) as unknown, authorization: req.headers.authorization });
        this.signal.wake();
        const done = () => {
          this.inFlight--;
          if (!this.refuseAcks) return res.writeHead(204).end();
          const [status, code] = this.refuseAcks;
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ code, message: "cursors.inbox: ack 9 is past the stream's last entry 4" }),
          );
        };
        if (this.holdAcks) this.held.push(done);
        else done();
      });
      return;
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'HERALD_NOT_FOUND', message: 'no such route' }));
      return;
    }
    this.signal.wake();
  }

  /** Answers the held ack requests. */
  releaseAcks(): void {
    this.holdAcks = false;
    for (const f of this.held.splice(0)) f();
  }

  nextStream(timeoutMs = WAIT_MS): Promise<SseStream> {
    return this.signal
      .until(() => this.streams[this.taken.sse], 'an SSE request', timeoutMs)
      .then((s) => {
        this.taken.sse++;
        return s;
      });
  }

  nextPoll(timeoutMs = WAIT_MS): Promise<Poll> {
    return this.signal
      .until(() => this.polls[this.taken.poll], 'a poll', timeoutMs)
      .then((p) => {
        this.taken.poll++;
        return p;
      });
  }

  nextSocket(timeoutMs = WAIT_MS): Promise<FakeSocket> {
    return this.signal
      .until(() => this.sockets[this.taken.ws], 'a WebSocket', timeoutMs)
      .then((s) => {
        this.taken.ws++;
        return s;
      });
  }

  until<T>(cond: () => T | undefined | false, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return this.signal.until(cond, what, timeoutMs);
  }

  async stop(): Promise<void> {
    this.releaseAcks();
    for (const s of this.sockets) s.ws.terminate();
    for (const s of this.heldUpgrades) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
