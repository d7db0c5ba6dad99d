import net from 'node:net';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message (default "condition"). */
  what?: string;
  /** Checked before each attempt: a string stops waiting at once with that message (e.g. "process exited"). */
  bail?: () => string | undefined | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Polls `fn` until it returns true, bounded by `timeoutMs`. A throwing attempt counts as "not yet";
 * its message is kept for the timeout error, which names `what`.
 */
export async function waitFor(
  fn: () => Promise<boolean> | boolean,
  { timeoutMs = 10_000, intervalMs = 100, what = 'condition', bail }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = bail?.();
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}`);
    try {
      if (await fn()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const detail = lastError === undefined ? '' : ` (last error: ${describe(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(Math.min(intervalMs, left));
  }
}

/** One TCP connect attempt; resolves true when connected, false on refusal or after `timeoutMs`. */
export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Resolves once `host:port` accepts TCP connections; throws after `timeoutMs`. */
export function waitForTcp(
  host: string,
  port: number,
  timeoutMs = 10_000,
  bail?: WaitOptions['bail'],
): Promise<void> {
  return waitFor(() => canConnect(host, port, Math.min(1000, timeoutMs)), {
    timeoutMs,
    what: `TCP ${host}:${port}`,
    bail,
  });
}

/** One GET; true when the answer is 200. */
export async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  return true;
}

/** Resolves once GET `url` answers 200; throws after `timeoutMs`. */
export function waitForHttp(url: string, timeoutMs = 10_000, bail?: WaitOptions['bail']): Promise<void> {
  return waitFor(() => httpOk(url, Math.min(2000, timeoutMs)), {
    timeoutMs,
    what: `HTTP 200 from ${url}`,
    bail,
  });
}

/**
 * The PROXY protocol v2 header of a balancer's own connection (command LOCAL, no addresses): what
 * HAProxy health checks send. A node that requires PROXY headers serves it as a direct connection.
 */
export const PROXY_V2_LOCAL: Buffer = Buffer.from('\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00', 'latin1');

export interface RawHttpOptions {
  /** Bytes sent before the request, e.g. PROXY_V2_LOCAL. */
  prefix?: Buffer;
  /** Default 2 s. */
  timeoutMs?: number;
  /** Local (source) address to connect from, e.g. 127.0.0.5. */
  localAddress?: string;
}

/**
 * One `GET <path>` as HTTP/1.0 over a fresh TCP connection (so it can start with a PROXY header);
 * resolves with the status and body once the server closes.
 */
export function rawHttpGet(
  host: string,
  port: number,
  urlPath: string,
  { prefix, timeoutMs = 2000, localAddress }: RawHttpOptions = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`GET ${urlPath} on ${host}:${port}: no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      if (prefix) socket.write(prefix);
      socket.write(`GET ${urlPath} HTTP/1.0\r\nHost: ${host}:${port}\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!status) {
        reject(
          new Error(
            `GET ${urlPath} on ${host}:${port}: no HTTP answer${text ? `: ${text.slice(0, 80)}` : ''}`,
          ),
        );
        return;
      }
      const sep = text.indexOf('\r\n\r\n');
      resolve({ status: Number(status[1]), body: sep < 0 ? '' : text.slice(sep + 4) });
    });
  });
}
