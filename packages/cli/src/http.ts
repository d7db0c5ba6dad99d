import { CliError, HttpError } from './errors.js';
import { DEFAULT_API_URL } from './settings.js';

export interface PublishBody {
  to: { devices: string[] } | { users: string[] } | { topic: string } | { broadcast: true };
  data: unknown;
  ttl?: number;
  deliverAt?: string;
  collapseKey?: string;
  priority?: 'high' | 'normal' | 'low';
}

export interface Accepted {
  id: string;
  status: string;
}

export interface Status {
  id: string;
  state: string;
  target: string;
  createdAt: string;
  deliverAt?: string;
  expiresAt: string;
  counts: { targets: number; delivered: number; acked: number; expired: number };
}

/** An API key as GET /v1/admin/keys lists it (never the key or its hash). */
export interface ApiKeyView {
  id: string;
  scopes: string[];
  createdAt: string | null;
  expiresAt: string | null;
  name: string | null;
  source: 'config' | 'redis';
}

/** The publish API over fetch: errors become HttpError (the API's code and message) or CliError. */
export class Api {
  constructor(
    readonly base: string,
    private readonly key: string,
    private readonly timeoutMs = 15_000,
  ) {}

  publish(body: PublishBody, idempotencyKey?: string): Promise<Accepted> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    return this.call<Accepted>('POST', '/v1/notifications', JSON.stringify(body), headers);
  }

  status(id: string): Promise<Status> {
    return this.call<Status>('GET', `/v1/notifications/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Promise<{ id: string; state: string }> {
    return this.call('DELETE', `/v1/notifications/${encodeURIComponent(id)}`);
  }

  createKey(body: {
    scopes: string[];
    expiresIn?: number;
    expiresAt?: string;
    name?: string;
  }): Promise<ApiKeyView & { key: string; app: string }> {
    return this.call('POST', '/v1/admin/keys', JSON.stringify(body), { 'content-type': 'application/json' });
  }

  listKeys(): Promise<{ keys: ApiKeyView[] }> {
    return this.call('GET', '/v1/admin/keys');
  }

  revokeKey(id: string): Promise<{ id: string; revoked: true }> {
    return this.call('DELETE', `/v1/admin/keys/${encodeURIComponent(id)}`);
  }

  private async call<T>(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const url = `${this.base}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.key}`, ...headers },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const hint = this.base === DEFAULT_API_URL ? ' (is `npm start` running? else pass --api)' : '';
      throw new CliError(`cannot reach the API at ${this.base}: ${describe(err)}${hint}`);
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const e = parsed as { code?: unknown; message?: unknown } | undefined;
      if (typeof e?.code === 'string')
        throw new HttpError(res.status, e.code, typeof e.message === 'string' ? e.message : '');
      throw new HttpError(res.status, 'HTTP_ERROR', `${method} ${path}: ${res.statusText || 'error'}`);
    }
    if (parsed === undefined)
      throw new CliError(`${method} ${path}: the API answered ${res.status} without JSON`);
    return parsed as T;
  }
}

/** A one-line reason for a failed fetch: undici hides the useful part in `cause`. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'timed out';
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code)
      ? `${code} ${cause.message}`
      : cause.message;
  }
  return err.message;
}
