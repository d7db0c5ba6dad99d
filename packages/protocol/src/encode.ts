/**
 * Builds a notification frame from parts without parsing the data: `data` is the JSON text the
 * publisher sent (already validated by the API), so it is spliced in as is. `streamJson` is the
 * JSON-encoded stream name, encoded once per stream rather than per frame.
 */
export function encodeNotification(
  streamJson: string,
  seq: number,
  id: string,
  ts: number,
  data: string,
): string {
  return `{"type":"notification","stream":${streamJson},"seq":${seq},"id":"${id}","ts":${ts},"data":${data}}`;
}
