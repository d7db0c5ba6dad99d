import type { ManagedProcess } from './proc.js';

/** A push node as the balancer sees it. */
export interface Upstream {
  host: string;
  port: number;
}

export type BalancerKind = 'nginx' | 'haproxy';

/** What nginx (`startNginx`) and HAProxy (`startHaproxy`) handles have in common: an L4 balancer in front of the nodes. */
export interface Balancer {
  readonly kind: BalancerKind;
  readonly host: string;
  readonly port: number;
  /** Dir holding the rendered config, pid file (and sockets). */
  readonly prefix: string;
  readonly confPath: string;
  /** PID of the master process (stays the same across reloads). */
  readonly pid: number;
  readonly process: ManagedProcess;
  /** The upstreams of the running config. */
  readonly upstreams: readonly Upstream[];
  /** True when the balancer sends a PROXY protocol header (nginx: v1, HAProxy: v2) to the nodes. */
  readonly proxyProtocol: boolean;
  /** `ws://<host>:<port>` (or `http://` with scheme 'http'); no path. */
  url(host?: string, scheme?: 'ws' | 'http'): string;
  /** SIGTERM (fast shutdown: open sessions are cut), SIGKILL after `deadlineMs`. */
  stop(deadlineMs?: number): Promise<void>;
  /** SIGKILL: a crash. */
  kill9(): Promise<void>;
  /**
   * Puts a new upstream set in place without a restart (the master PID stays); resolves once new
   * sessions go by the new config. Sessions already open stay on their node until they close or the
   * old workers' shutdown deadline passes.
   */
  reload(upstreams: readonly Upstream[]): Promise<void>;
}
