/**
 * Stream names as they appear on the wire. A device has one inbox; every topic has a stream;
 * broadcasts have one stream that every device reads.
 */
export const INBOX = 'inbox';
export const BROADCAST = 'broadcast';
export const TOPIC_PREFIX = 'topic:';

/** Topic names: dot-separated words, so patterns like `news.*` in tokens stay simple. */
export const TOPIC_RE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
export const MAX_TOPIC_LENGTH = 128;
/** Device and user ids: opaque, but bounded and free of characters that would need escaping. */
export const ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

export type StreamName = typeof INBOX | typeof BROADCAST | `topic:${string}`;

export function isValidTopic(topic: string): boolean {
  return topic.length <= MAX_TOPIC_LENGTH && TOPIC_RE.test(topic);
}

export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}

export function topicStream(topic: string): `topic:${string}` {
  return `${TOPIC_PREFIX}${topic}`;
}

/** Parses a wire stream name; returns undefined for anything that is not one. */
export function parseStream(
  name: string,
): { kind: 'inbox' } | { kind: 'broadcast' } | { kind: 'topic'; topic: string } | undefined {
  if (name === INBOX) return { kind: 'inbox' };
  if (name === BROADCAST) return { kind: 'broadcast' };
  if (name.startsWith(TOPIC_PREFIX)) {
    const topic = name.slice(TOPIC_PREFIX.length);
    return isValidTopic(topic) ? { kind: 'topic', topic } : undefined;
  }
  return undefined;
}

/**
 * Topic patterns from the token's `topics` claim: exact names, `*` for one segment, a trailing
 * `>` (or `**`) for any number of trailing segments. `news.*` allows `news.sport`, not `news.a.b`.
 */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const seg = p[i];
    if ((seg === '>' || seg === '**') && i === p.length - 1) return t.length > i;
    if (i >= t.length) return false;
    if (seg !== '*' && seg !== t[i]) return false;
  }
  return p.length === t.length;
}

export function topicAllowed(patterns: readonly string[] | undefined, topic: string): boolean {
  if (patterns === undefined) return true;
  return patterns.some((p) => topicMatches(p, topic));
}
