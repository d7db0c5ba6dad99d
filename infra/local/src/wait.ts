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
