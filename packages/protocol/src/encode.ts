/**
 * Builds a notification frame from parts without parsing the data: `data` is the JSON text the
 * publisher sent (already validated by the API), so it is spliced in as is. `streamJson` is the
 * JSON-encoded stream name, encoded once per stream rather than per frame. `priority` is given
 * only when it is not normal.
 */
export function encodeNotification(
  streamJson: string,
  seq: number,
  id: string,
  ts: number,
  data: string,
  priority?: 'high' | 'low',
): string {
  // Normal priority adds nothing to the frame (the common case keeps its size).
  const p = priority === undefined ? '' : `,"priority":"${priority}"`;
  return `{"type":"notification","stream":${streamJson},"seq":${seq},"id":"${id}","ts":${ts}${p},"data":${data}}`;
}
