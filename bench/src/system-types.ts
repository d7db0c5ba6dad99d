import type { ClientKind } from './loadgen/protocol.js';
import type { ProcGroup } from './procstat.js';
import type { HttpPublisher } from './publisher.js';

export const SYSTEMS = [
  'herald-direct',
  'herald-nginx',
  'socketio',
  'nchan',
  'herald-direct-sse',
  'nchan-sse',
  'ws-floor',
  'herald-floor',
  'herald-floor-durable',
] as const;
export type SystemName = (typeof SYSTEMS)[number];

/**
 * The Server-Sent Events variants: Herald's GET /v1/sse (+ POST /v1/acks) straight to the nodes,
 * and Nchan's EventSource subscriber. They run in these scenarios only (the others say so).
 */
export const SSE_SYSTEMS: readonly SystemName[] = ['herald-direct-sse', 'nchan-sse'];
export const SSE_SCENARIOS: readonly string[] = ['idle', 'broadcast'];
export const SSE_ONLY = 'n/a: the SSE variants run in the idle and broadcast scenarios';

/**
 * The floors (issue #14, floors.ts): bare servers that run only when named in `--systems`, and
 * only in these scenarios (the others say so).
 */
export const FLOORS: Partial<Record<SystemName, { scenarios: readonly string[]; skipped: string }>> = {
  'ws-floor': { scenarios: ['connect'], skipped: 'n/a: the floor server runs in the connect scenario only' },
  'herald-floor': {
    scenarios: ['single', 'batch'],
    skipped: 'n/a: the architecture floor runs in the single and batch scenarios only',
  },
  'herald-floor-durable': {
    scenarios: ['single', 'batch'],
    skipped: 'n/a: the architecture floor runs in the single and batch scenarios only',
  },
};

export const API_KEY = 'bench-api-key-0123456789abcdef';
export const TOKEN_SECRET = 'bench-token-secret-0123456789abcdef';

export type Target =
  | { kind: 'topic'; topic: string }
  | { kind: 'device'; device: string }
  | { kind: 'broadcast' };

export interface RunningSystem {
  name: SystemName;
  clientKind: ClientKind;
  /** Where clients connect; client i uses urls[i % urls.length]. */
  urls: string[];
  /** Server processes: counted ones make "server CPU"; others (the balancer) are reported beside it. */
  groups: ProcGroup[];
  tokenSecret?: string;
  /** Publishes `body` (JSON text) to `target`; resolves with the HTTP status (0: failed). */
  publish(pub: HttpPublisher, target: Target, body: string): Promise<number>;
  /** Publishes many in one request, when the system has a batch API (Herald); resolves with the HTTP status. */
  publishBatch?(pub: HttpPublisher, items: { target: Target; body: string }[]): Promise<number>;
  /** How the system was set up (process counts, ports, settings that differ from defaults). */
  info: Record<string, unknown>;
  /** Log files worth reading when something stops (nginx error logs). */
  logs: string[];
  /** The system's own Redis (one server), for `INFO commandstats` around a phase (Herald). */
  redisUrl?: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  dir: string;
  logDir: string;
  /** Most connections the scenario will open: sizes process counts under the descriptor limit. */
  peak: number;
  /** Herald push nodes (at least; more when `peak` needs them). */
  nodes: number;
  /** Herald's Redis: more than 1 starts a Redis Cluster with that many masters. */
  redisShards?: number;
  /** Put a balancer (nginx stream) in front of the Socket.IO processes (the maxconn scenario). */
  balancer?: boolean;
  /** Herald: write V8 CPU profiles of every app process into this dir. */
  cpuProf?: string;
  /** Herald's own Redis with AOF (default true, as the stack starts it) or without (`CONFIG SET appendonly no`). */
  aof?: boolean;
}
