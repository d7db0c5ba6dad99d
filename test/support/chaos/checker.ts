/**
 * The campaign's checker: reads what publishers were told (202s) and what each device's SDK emitted
 * to the app, and says what was lost, duplicated or reordered. Pure: no I/O, no clock. Times in
 * the histories come from one monotonic clock (the test process's `performance.now()`) and are
 * used only for the "longest wait" figure, never to decide loss or order.
 */

/** A publish a publisher got a 202 for. */
export interface Accepted {
  id: string;
  /** The Idempotency-Key it was sent with (also in its data, as `k`). */
  key: string;
  publisher: number;
  /** Position in its publisher's sequence (each publisher sends one at a time). */
  n: number;
  /** `inbox` for devices and users, `topic:<name>` for a topic. */
  stream: string;
  /** Devices it must reach. */
  targets: readonly string[];
  /** Appended by the API before its 202 (devices, topic), so ordered by accept per publisher and stream. */
  direct: boolean;
  sentAt: number;
  acceptedAt: number;
}

/** A publish whose outcome the publisher never learned (no 202 within its retry bound). */
export interface Unconfirmed {
  key: string;
  targets: readonly string[];
}

export type DeviceEvent =
  | { t: 'note'; at: number; stream: string; seq: number; id: string; key: string | undefined }
  | { t: 'gap'; at: number; stream: string; after: number; next: number; reason: string }
  | { t: 'open'; at: number }
  | { t: 'down'; at: number };

export interface DeviceHistory {
  device: string;
  transport: string;
  events: readonly DeviceEvent[];
}

export interface CheckResult {
  accepted: number;
  unconfirmed: number;
  /** (notification, device) pairs the accepted publishes must reach. */
  expected: number;
  delivered: number;
  /** Expected, never emitted, with no gap on that device's stream. */
  lost: Array<{ id: string; device: string; stream: string }>;
  /** Expected, never emitted, on a stream where the device got a gap (counted here, not in lost). */
  lostWithGap: number;
  /** The same notification id emitted twice to one app. */
  duplicated: Array<{ id: string; device: string; times: number }>;
  /** Two different ids for one Idempotency-Key reached one app: a retried publish sent twice. */
  duplicatedByKey: Array<{ key: string; device: string; ids: string[] }>;
  /** A seq not above the previous one on the same stream, as emitted to one app. */
  reorderedSeq: Array<{ device: string; stream: string; seq: number; after: number }>;
  /** Direct publishes of one publisher to one stream emitted in another order than their 202s. */
  reorderedDirect: Array<{ device: string; stream: string; publisher: number; n: number; after: number }>;
  /** Same for queued ones (users): only reported; docs/guarantees.md lists when they may differ. */
  reorderedQueued: number;
  /** Emitted to a device that was not a target, or an id nobody published. */
  unexpected: Array<{ id: string; device: string }>;
  gaps: Array<{ device: string; stream: string; after: number; next: number; reason: string }>;
  /** Longest accept-to-emit time of a pair whose device was connected at the 202 (ms). */
  maxWaitConnectedMs: number;
  maxWaitPair: { id: string; device: string } | undefined;
}

export function check(
  accepted: readonly Accepted[],
  unconfirmed: readonly Unconfirmed[],
  histories: readonly DeviceHistory[],
): CheckResult {
  const byId = new Map(accepted.map((a) => [a.id, a]));
  const unconfirmedTargets = new Map(unconfirmed.map((u) => [u.key, new Set(u.targets)]));
  const result: CheckResult = {
    accepted: accepted.length,
    unconfirmed: unconfirmed.length,
    expected: 0,
    delivered: 0,
    lost: [],
    lostWithGap: 0,
    duplicated: [],
    duplicatedByKey: [],
    reorderedSeq: [],
    reorderedDirect: [],
    reorderedQueued: 0,
    unexpected: [],
    gaps: [],
    maxWaitConnectedMs: 0,
    maxWaitPair: undefined,
  };

  for (const h of histories) {
    const seenAt = new Map<string, number>();
    const times = new Map<string, number>();
    const idsByKey = new Map<string, Set<string>>();
    const lastSeq = new Map<string, number>();
    // Per stream and publisher: the highest `n` emitted so far, split by direct and queued.
    const lastN = new Map<string, number>();
    const gapStreams = new Set<string>();
    // Connected intervals, to tell whether the device was connected at a 202.
    const opens: Array<[number, number]> = [];
    let openSince: number | undefined;

    for (const e of h.events) {
      if (e.t === 'open') {
        openSince ??= e.at;
      } else if (e.t === 'down') {
        if (openSince !== undefined) opens.push([openSince, e.at]);
        openSince = undefined;
      } else if (e.t === 'gap') {
        gapStreams.add(e.stream);
        result.gaps.push({
          device: h.device,
          stream: e.stream,
          after: e.after,
          next: e.next,
          reason: e.reason,
        });
      } else {
        const first = !seenAt.has(e.id);
        times.set(e.id, (times.get(e.id) ?? 0) + 1);
        if (first) seenAt.set(e.id, e.at);
        const prev = lastSeq.get(e.stream) ?? 0;
        if (e.seq <= prev)
          result.reorderedSeq.push({ device: h.device, stream: e.stream, seq: e.seq, after: prev });
        lastSeq.set(e.stream, e.seq);
        if (e.key !== undefined) {
          const ids = idsByKey.get(e.key) ?? new Set<string>();
          ids.add(e.id);
          idsByKey.set(e.key, ids);
        }
        const a = byId.get(e.id);
        if (a) {
          if (!a.targets.includes(h.device)) {
            result.unexpected.push({ id: e.id, device: h.device });
            continue;
          }
          // Order against the 202s: first emissions only (a duplicate is counted as one).
          if (!first) continue;
          const k = `${e.stream}\u0000${a.publisher}\u0000${a.direct}`;
          const before = lastN.get(k) ?? -1;
          if (a.n < before) {
            if (a.direct)
              result.reorderedDirect.push({
                device: h.device,
                stream: e.stream,
                publisher: a.publisher,
                n: a.n,
                after: before,
              });
            else result.reorderedQueued++;
          }
          lastN.set(k, Math.max(before, a.n));
        } else if (!(e.key !== undefined && unconfirmedTargets.get(e.key)?.has(h.device))) {
          result.unexpected.push({ id: e.id, device: h.device });
        }
      }
    }
    if (openSince !== undefined) opens.push([openSince, Number.POSITIVE_INFINITY]);
    const connectedAt = (t: number) => opens.some(([from, to]) => from <= t && t < to);

    for (const [id, n] of times) if (n > 1) result.duplicated.push({ id, device: h.device, times: n });
    for (const [key, ids] of idsByKey) {
      if (ids.size > 1) result.duplicatedByKey.push({ key, device: h.device, ids: [...ids] });
    }
    for (const a of accepted) {
      if (!a.targets.includes(h.device)) continue;
      result.expected++;
      const at = seenAt.get(a.id);
      if (at === undefined) {
        if (gapStreams.has(a.stream)) result.lostWithGap++;
        else result.lost.push({ id: a.id, device: h.device, stream: a.stream });
        continue;
      }
      result.delivered++;
      if (connectedAt(a.acceptedAt)) {
        const wait = Math.max(0, at - a.acceptedAt);
        if (wait > result.maxWaitConnectedMs) {
          result.maxWaitConnectedMs = wait;
          result.maxWaitPair = { id: a.id, device: h.device };
        }
      }
    }
  }
  return result;
}

/** The result table: one `| metric | value |` row each (markdown, as in docs/guarantees.md). */
export function resultTable(
  seed: number,
  r: CheckResult,
  faults: ReadonlyMap<string, number>,
  extra: Record<string, string | number> = {},
): string {
  const reasons = new Map<string, number>();
  for (const g of r.gaps) reasons.set(g.reason, (reasons.get(g.reason) ?? 0) + 1);
  const rows: Array<[string, string | number]> = [
    ['seed', seed],
    ...Object.entries(extra),
    ['faults injected', [...faults.values()].reduce((s, n) => s + n, 0)],
    ...[...faults.entries()].sort().map(([k, n]): [string, number] => [`  ${k}`, n]),
    ['accepted (202)', r.accepted],
    ['unconfirmed (no 202 within the retry bound)', r.unconfirmed],
    ['expected deliveries (notification x device)', r.expected],
    ['delivered to the app', r.delivered],
    ['lost', r.lost.length],
    ['not delivered, announced by a gap', r.lostWithGap],
    ['duplicated to the app (same id)', r.duplicated.length],
    ['duplicated to the app (one key, two ids)', r.duplicatedByKey.length],
    ['reordered within a stream (seq)', r.reorderedSeq.length],
    ['reordered vs 202 order (direct, per publisher)', r.reorderedDirect.length],
    ['reordered vs 202 order (queued, documented exceptions)', r.reorderedQueued],
    ['unexpected (not a target)', r.unexpected.length],
    ['gaps', r.gaps.length === 0 ? 0 : [...reasons].map(([k, n]) => `${k}: ${n}`).join(', ')],
    ['longest wait of a connected device (ms)', Math.round(r.maxWaitConnectedMs)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`| ${'metric'.padEnd(w)} | value |`, `| ${'-'.repeat(w)} | ----- |`]
    .concat(rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v} |`))
    .join('\n');
}
