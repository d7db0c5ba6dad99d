import type { ServerResponse } from 'node:http';
import { CloseCode, encodeCursors, HttpError } from '@herald/protocol';
import { frameType } from './sse-transport.js';
import type { Peer, SharedFrame, Transport } from './transport.js';

/**
 * The handle of one long-poll: the frames gathered for its answer (at most `cap`: the replay
 * batch), the cursors they bring every stream to, and the HTTP response that carries them.
 */
export class PollConn {
  peer: Peer | undefined = undefined;
  readonly frames: string[] = [];
  /** Cursors of the answer: the welcome's, moved by each frame kept. */
  cursors: Record<string, number> = {};
  answered = false;
  /** Past the replay: the first frame now answers (after the rest of its tick). */
  holding = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly res: ServerResponse,
    private readonly cap: number,
  ) {}

  /** Holds the poll up to `ms`, then answers with what it has (nothing, or a frame on the way). */
  hold(ms: number): void {
    if (this.answered) return;
    if (this.frames.length > 0) {
      this.answer();
      return;
    }
    this.holding = true;
    this.timer = setTimeout(() => this.answer(), ms);
  }

  add(text: string, stream: string | undefined, seq: number | undefined): void {
    if (this.answered) return;
    this.frames.push(text);
    if (stream !== undefined && seq !== undefined) this.cursors[stream] = seq;
    // Full: answered now, which ends the session, so nothing more is sent (or counted) for it.
    if (this.frames.length >= this.cap) this.answer();
    else if (this.holding && !this.scheduled) {
      this.scheduled = true;
      // The rest of a burst (entries from one Redis read, doorbells of one socket read) joins it.
      setImmediate(() => this.answer());
    }
  }

  /** Answers 200 with the frames and cursors, and ends the session. */
  answer(): void {
    if (this.answered) return;
    this.finish(
      200,
      `{"cursors":${JSON.stringify(encodeCursors(this.cursors))},"frames":[${this.frames.join(',')}]}`,
    );
  }

  /** Answers with an HTTP error instead (capacity, token), and ends the session. */
  fail(status: number, code: string, message: string): void {
    if (this.answered) return;
    this.finish(status, JSON.stringify({ code, message }), status === 503 ? { 'retry-after': '1' } : {});
  }

  /** The client went away before its answer. */
  gone(): void {
    if (this.answered) return;
    this.answered = true;
    clearTimeout(this.timer);
    this.peer?.ended('peer');
  }

  private finish(status: number, body: string, headers: Record<string, string> = {}): void {
    this.answered = true;
    clearTimeout(this.timer);
    if (!this.res.headersSent && !this.res.destroyed) {
      this.res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        ...headers,
      });
      this.res.end(body);
    }
    this.peer?.ended('poll_answered');
  }
}

const kConn = Symbol('herald.poll');

type Tagged = ServerResponse & { [kConn]: PollConn };

// Response listeners shared by every poll (`this` is the response): no closures per poll.
function onClose(this: ServerResponse): void {
  (this as Tagged)[kConn].gone();
}
function onError(this: ServerResponse, err: Error): void {
  (this as Tagged)[kConn].peer?.failed(err);
}

/** Routes a response's close and errors to its poll, through the shared listeners above. */
export function attachPoll(c: PollConn): void {
  (c.res as Tagged)[kConn] = c;
  c.res.on('close', onClose);
  c.res.on('error', onError);
}

/**
 * Long-poll (docs/protocol.md, "Long-poll"): the notification, gap and reconnect frames of one
 * poll, as on WebSocket, gathered into one JSON answer; a close becomes the answer (or its HTTP
 * error: capacity 503, token 401).
 */
export const pollTransport: Transport<PollConn> = {
  kind: 'poll',
  write(c: PollConn, frame: string | SharedFrame, stream?: string, seq?: number): void {
    const text = typeof frame === 'string' ? frame : frame.text;
    if (stream !== undefined) {
      c.add(text, stream, seq);
      return;
    }
    const type = frameType(text);
    if (type === 'welcome') {
      const streams = (JSON.parse(text) as { streams: Record<string, { cursor: number }> }).streams;
      for (const [name, s] of Object.entries(streams)) c.cursors[name] = s.cursor;
    } else if (type === 'reconnect') c.add(text, undefined, undefined);
  },
  buffered(): number {
    return 0;
  },
  close(c: PollConn, code: number, reason: string): void {
    if (code === CloseCode.Capacity) c.fail(503, HttpError.NodeBusy.code, reason);
    else if (code === CloseCode.TokenExpired) c.fail(401, HttpError.TokenExpired.code, reason);
    else if (code === CloseCode.Unauthorized) c.fail(401, HttpError.Unauthorized.code, reason);
    else if (code === CloseCode.Internal) c.fail(500, HttpError.Internal.code, reason);
    else c.answer();
  },
  terminate(c: PollConn): void {
    c.answer();
  },
  ping(c: PollConn): void {
    c.peer?.heard();
  },
};
