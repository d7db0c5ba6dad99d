import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

/**
 * Helpers for the door fuzz test (test/system/fuzz.test.ts): a seeded PRNG so every failure
 * reproduces, a bounded concurrent runner, and a raw WebSocket client speaking RFC 6455 over a
 * plain TCP socket, so a test can send what no well-behaved library would (unmasked frames,
 * reserved bits, fragment floods, invalid UTF-8, lying length fields).
 */

/** mulberry32: tiny, fast and good enough to pick fuzz inputs; same seed, same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed of its own for each named family, so adding a family does not shift the others' inputs. */
export function familySeed(seed: number, family: string): number {
  return createHash('sha256').update(`${seed}/${family}`).digest().readUInt32BE(0);
}

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  float(): number {
    return this.next();
  }

  /** Integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }

  /** A string of random code points (any plane, no lone surrogates): always valid UTF-8. */
  unicode(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) {
      const r = this.next();
      let cp: number;
      if (r < 0.4) cp = this.int(0x20, 0x7e);
      else if (r < 0.5) cp = this.int(0, 0x1f);
      else if (r < 0.8) cp = this.int(0x80, 0xd7ff);
      else if (r < 0.9) cp = this.int(0xe000, 0xfffd);
      else cp = this.int(0x10000, 0x10ffff);
      s += String.fromCodePoint(cp);
    }
    return s;
  }

  /** Characters that JSON and URLs find awkward, for ids and topics. */
  nasty(n: number): string {
    const parts = [
      '',
      ' ',
      '..',
      '.',
      '/',
      '\\',
      '%',
      '%00',
      '\u0000',
      '\n',
      '\t',
      '"',
      "'",
      '*',
      '>',
      '{',
      '}',
      '$',
      '#',
      '?',
      '&',
      '=',
      '+',
      ',',
      ';',
      '\u202e',
      '\ufeff',
      '\u200b',
      'é',
      '日本',
      '🔥',
      '\ud83d',
      'a',
      'Z',
      '9',
      '_',
      '-',
      ':',
      '@',
      '__proto__',
      'constructor',
    ];
    let s = '';
    for (let i = 0; i < n; i++) s += this.pick(parts);
    return s;
  }
}

export { pool } from './devices.js';

/** Rejects with `what` after `ms`; the underlying work is left to its own bounds. */
export function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no outcome within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** A short, printable description of an input for failure reports. */
export function show(v: unknown, max = 160): string {
  let s: string;
  if (Buffer.isBuffer(v))
    s = `<${v.length} bytes ${v.subarray(0, 32).toString('hex')}${v.length > 32 ? '...' : ''}>`;
  else if (typeof v === 'string') s = JSON.stringify(v);
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > max ? `${s.slice(0, max)}...(${s.length} chars)` : s;
}

// ---- WebSocket frames ----

export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface FrameOptions {
  /** FIN bit (default true). */
  fin?: boolean;
  /** Mask the payload as a client must (default true). */
  mask?: boolean;
  /** RSV1-3 as a 3-bit number (default 0). */
  rsv?: number;
  /** Length to put in the header instead of the payload's (a lying length field). */
  length?: number | bigint;
}

/** Encodes one client frame. */
export function wsFrame(opcode: number, payload: Buffer | string = '', o: FrameOptions = {}): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const n = o.length ?? p.length;
  let head: Buffer;
  if (typeof n === 'number' && n < 126) {
    head = Buffer.alloc(2);
    head[1] = n;
  } else if (typeof n === 'number' && n < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = ((o.fin ?? true) ? 0x80 : 0) | (((o.rsv ?? 0) & 7) << 4) | (opcode & 0x0f);
  if (o.mask === false) return Buffer.concat([head, p]);
  head[1] = (head[1] as number) | 0x80;
  const key = randomBytes(4);
  const masked = Buffer.alloc(p.length);
  for (let i = 0; i < p.length; i++) masked[i] = (p[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, key, masked]);
}

/** A message split into fragments of `size` bytes (the first a text frame, the rest continuations). */
export function fragments(payload: Buffer | string, size: number, o: { final?: boolean } = {}): Buffer[] {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out: Buffer[] = [];
  for (let off = 0; off < p.length || out.length === 0; off += size) {
    const last = off + size >= p.length;
    out.push(
      wsFrame(out.length === 0 ? OP.text : OP.cont, p.subarray(off, off + size), {
        fin: last && (o.final ?? true),
      }),
    );
  }
  return out;
}

export interface ServerFrame {
  type: string;
  [k: string]: unknown;
}

/** What a connection ended with: a close frame's code, a drop (TCP closed without one), or still open. */
export type Ending = { kind: 'close'; code: number; reason: string } | { kind: 'drop' } | { kind: 'open' };

export function showEnding(e: Ending): string {
  if (e.kind === 'close') return `close ${e.code}${e.reason ? ` (${e.reason})` : ''}`;
  return e.kind === 'drop' ? 'socket dropped without a close frame' : 'still open';
}

/**
 * A WebSocket client over a raw TCP socket. Records the server's text frames (parsed as JSON)
 * and how the connection ended. Never answers anything by itself except the opening handshake.
 */
export class RawWs {
  readonly frames: ServerFrame[] = [];
  /** Raw non-JSON or binary frames from the server (there should be none). */
  readonly odd: string[] = [];
  closeFrame: { code: number; reason: string } | undefined;
  ended = false;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {}

  /** Connects and completes the opening handshake on `path` (default /v1/ws). */
  static open(port: number, o: { host?: string; path?: string; timeoutMs?: number } = {}): Promise<RawWs> {
    const host = o.host ?? '127.0.0.1';
    const socket = net.connect(port, host);
    socket.setNoDelay(true);
    const ws = new RawWs(socket);
    const key = randomBytes(16).toString('base64');
    return new Promise<RawWs>((resolve, reject) => {
      let head = Buffer.alloc(0);
      let upgraded = false;
      const t = setTimeout(() => {
        socket.destroy();
        reject(new Error(`handshake with ${host}:${port} timed out`));
      }, o.timeoutMs ?? 5000);
      socket.on('error', (err) => {
        if (!upgraded) {
          clearTimeout(t);
          reject(err);
        }
      });
      socket.on('close', () => {
        ws.ended = true;
        if (!upgraded) {
          clearTimeout(t);
          reject(new Error(`connection closed during the handshake: ${JSON.stringify(head.toString())}`));
        }
        ws.wake();
      });
      socket.on('data', (d: Buffer) => {
        if (upgraded) return ws.onData(d);
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.subarray(0, end).toString('latin1');
        if (!status.startsWith('HTTP/1.1 101')) {
          clearTimeout(t);
          socket.destroy();
          reject(new Error(`upgrade refused: ${status.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        clearTimeout(t);
        resolve(ws);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) ws.onData(rest);
      });
      socket.write(
        `GET ${o.path ?? '/v1/ws'} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let n = (b[1] as number) & 0x7f;
      let off = 2;
      if (n === 126) {
        if (b.length < 4) break;
        n = b.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (b.length < 10) break;
        n = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + n) break;
      const op = (b[0] as number) & 0x0f;
      const payload = b.subarray(off, off + n);
      this.buf = b.subarray(off + n);
      if (op === OP.close) {
        this.closeFrame = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString(),
        };
      } else if (op === OP.text) {
        try {
          this.frames.push(JSON.parse(payload.toString()) as ServerFrame);
        } catch {
          this.odd.push(`text ${show(payload.toString())}`);
        }
      } else if (op !== OP.ping && op !== OP.pong) {
        this.odd.push(`opcode ${op} ${show(payload)}`);
      }
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Writes bytes as they are; a write to a socket the server already closed is ignored. */
  write(data: Buffer | readonly Buffer[]): void {
    if (this.socket.destroyed) return;
    this.socket.write(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
  }

  /** One masked text frame (the bytes as given: a Buffer need not be UTF-8). */
  text(payload: string | Buffer): void {
    this.write(wsFrame(OP.text, payload));
  }

  json(v: unknown): void {
    this.text(JSON.stringify(v));
  }

  get ending(): Ending {
    if (this.closeFrame) return { kind: 'close', ...this.closeFrame };
    return this.ended ? { kind: 'drop' } : { kind: 'open' };
  }

  /** Resolves with the value once `cond` holds (re-checked on every frame and on close), or undefined after `ms`. */
  async until<T>(cond: () => T | undefined | false, ms: number): Promise<T | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  frame(
    type: string,
    ms: number,
    pred: (f: ServerFrame) => boolean = () => true,
  ): Promise<ServerFrame | undefined> {
    return this.until(() => this.frames.find((f) => f.type === type && pred(f)), ms);
  }

  /** Waits until the server closes or drops the connection; `open` after `ms`. */
  async waitEnd(ms: number): Promise<Ending> {
    await this.until(() => this.closeFrame !== undefined || this.ended, ms);
    return this.ending;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
