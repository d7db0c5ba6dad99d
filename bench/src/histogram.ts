/**
 * Latency histogram with log buckets of 1% width from 1 µs up, so percentiles are within 1%
 * and histograms from several processes merge by adding counts. Values in milliseconds.
 */
const GROWTH = Math.log(1.01);

export class Histogram {
  counts = new Map<number, number>();
  n = 0;
  max = 0;
  min = Number.POSITIVE_INFINITY;
  sum = 0;

  record(ms: number): void {
    const v = Math.max(ms, 0.001);
    const b = Math.ceil(Math.log(v * 1000) / GROWTH);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    if (ms < this.min) this.min = ms;
  }

  toJSON(): HistogramData {
    return { buckets: [...this.counts], n: this.n, max: this.max, min: this.min, sum: this.sum };
  }

  static merge(parts: readonly HistogramData[]): Histogram {
    const h = new Histogram();
    for (const p of parts) {
      for (const [b, c] of p.buckets) h.counts.set(b, (h.counts.get(b) ?? 0) + c);
      h.n += p.n;
      h.sum += p.sum;
      if (p.n > 0) {
        h.max = Math.max(h.max, p.max);
        h.min = Math.min(h.min, p.min);
      }
    }
    return h;
  }

  /** Upper bound of the bucket holding the q-quantile (q in 0..1), ms; NaN when empty. */
  quantile(q: number): number {
    if (this.n === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.counts.get(k)!;
      if (seen >= rank) return Math.min(Math.exp(k * GROWTH) / 1000, this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    const r = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
    return {
      count: this.n,
      p50: r(this.quantile(0.5)),
      p90: r(this.quantile(0.9)),
      p99: r(this.quantile(0.99)),
      max: r(this.n ? this.max : Number.NaN),
      mean: r(this.n ? this.sum / this.n : Number.NaN),
    };
  }
}

export interface HistogramData {
  buckets: [number, number][];
  n: number;
  max: number;
  min: number;
  sum: number;
}

export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}
