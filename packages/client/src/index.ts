export type {
  Cursors,
  ErrorFrame,
  GapFrame,
  NotificationFrame,
  ReconnectFrame,
  SubscribedFrame,
  UnsubscribedFrame,
  WelcomeFrame,
} from '@herald/protocol';
export { Backoff, type BackoffOptions } from './backoff.js';
export {
  CLOSE_ABNORMAL,
  type ClientState,
  type DisconnectEvent,
  HeraldClient,
  type HeraldClientOptions,
  type HeraldEvents,
  type LifecycleTargets,
  type RetryEvent,
  type TokenSource,
  type Transport,
} from './client.js';
export {
  type CursorStorage,
  CursorTracker,
  LocalStorageCursorStorage,
  type LocalStorageCursorStorageOptions,
  MemoryCursorStorage,
  type StorageLike,
  sanitizeCursors,
} from './cursors.js';
export { RecentIds } from './dedupe.js';
export { Emitter, type Listener } from './emitter.js';
export { HeraldError, type HeraldErrorOptions } from './errors.js';
export { type SseEvent, type SseParser, sseParser } from './http.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
