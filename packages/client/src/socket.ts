/**
 * The part of the WebSocket API the client uses: both the browser's native `WebSocket` and the
 * `ws` package's `WebSocket` satisfy it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `WebSocket.OPEN`, the same in every implementation. */
export const OPEN = 1;

/**
 * The constructor to use: the one passed in, else the global one (browsers, Deno, Bun, Node 22+),
 * else the `ws` package (an optional peer dependency), loaded only then, with a specifier that bundlers leave alone so a
 * browser bundle never pulls `ws` in.
 */
export async function resolveWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return given;
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (native) return native;
  const specifier = 'ws';
  let mod: { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
  try {
    mod = await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(
      'this runtime has no global WebSocket (Node 22+, browsers, Deno and Bun have one) and the ' +
        "optional peer dependency 'ws' is not installed: run `npm install ws`, or pass the " +
        'WebSocket option',
      { cause: err },
    );
  }
  const ctor = mod.WebSocket ?? mod.default;
  if (!ctor) throw new Error('the ws package has no WebSocket export');
  return ctor;
}

/** Text of a message event: a string from browsers and `ws`, bytes from some other implementations. */
export function messageText(data: unknown): string | undefined {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data))
    return new TextDecoder().decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(new Uint8Array(data));
  return undefined;
}

/** Node's `ws` sockets surface protocol pings as an event; browsers hide them. */
export function onProtocolPing(ws: WebSocketLike, listener: () => void): void {
  const on = (ws as { on?: unknown }).on;
  if (typeof on === 'function') on.call(ws, 'ping', listener);
}

/** Drops a socket now: `terminate()` where there is one (`ws`: no closing handshake with a dead peer). */
export function dropSocket(ws: WebSocketLike, code: number, reason: string): void {
  try {
    const terminate = (ws as { terminate?: unknown }).terminate;
    if (typeof terminate === 'function') terminate.call(ws);
    else ws.close(code, reason);
  } catch {
    // already closed or closing
  }
}
