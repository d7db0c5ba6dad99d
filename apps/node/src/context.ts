import type { Devices, Keys, Presence, Streams } from '@herald/store';
import type { Logger } from 'pino';
import type { TokenVerifier } from './auth.js';
import type { Broker } from './broker.js';
import type { Expiries } from './expiry.js';
import type { Flusher } from './flusher.js';
import type { Hellos } from './hellos.js';
import type { Hub } from './hub.js';
import type { Stats } from './stats.js';

export interface NodeLimits {
  heartbeatMs: number;
  helloTimeoutMs: number;
  maxTopics: number;
  slowConsumerBytes: number;
  replayBatch: number;
  maxConnections: number;
  maxConnectionsPerUser: number;
  /** Client frames per second per connection (burst twice that). */
  frameRate: number;
}

/** What every client of a node shares; built once by `HeraldNode`. */
export interface NodeContext {
  nodeId: string;
  limits: NodeLimits;
  log: Logger;
  keys: Keys;
  streams: Streams;
  devices: Devices;
  presence: Presence;
  verifier: TokenVerifier;
  hub: Hub;
  broker: Broker;
  flusher: Flusher;
  /** Batches the Redis work of hellos. */
  hellos: Hellos;
  /** Token expiries of all connections. */
  expiries: Expiries;
  stats: Stats;
}
