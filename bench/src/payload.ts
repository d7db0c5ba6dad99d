/**
 * The notification body every system carries: `{"bt":<send time, ms since epoch>,"bi":<index>,"p":"xx.."}`,
 * padded to an exact JSON size. Receivers find `bt` and `bi` by scanning the text, the same
 * cheap way for every system (no full JSON parse on the load generator's hot path).
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function makePayload(index: number, bytes: number, sentAt = nowMs()): string {
  const head = `{"bt":${sentAt.toFixed(3)},"bi":${index},"p":"`;
  const pad = Math.max(0, bytes - head.length - 2);
  return `${head}${'x'.repeat(pad)}"}`;
}

function numberAfter(text: string, key: string, from = 0): number {
  const at = text.indexOf(key, from);
  if (at < 0) return Number.NaN;
  let end = at + key.length;
  while (end < text.length) {
    const c = text.charCodeAt(end);
    // digits, '.', '-', 'e'
    if ((c >= 48 && c <= 57) || c === 46 || c === 45 || c === 101) end++;
    else break;
  }
  return Number(text.slice(at + key.length, end));
}

/** `bt` and `bi` of a frame that embeds a payload; undefined when there is none. */
export function readPayload(text: string): { sentAt: number; index: number } | undefined {
  const at = text.indexOf('"bt":');
  if (at < 0) return undefined;
  const sentAt = numberAfter(text, '"bt":', at);
  const index = numberAfter(text, '"bi":', at);
  if (!Number.isFinite(sentAt) || !Number.isFinite(index)) return undefined;
  return { sentAt, index };
}

export { numberAfter };
