/** A one-line progress bar on a TTY stream, redrawn at most every `intervalMs`; silent elsewhere. */
export class ProgressBar {
  private last = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly width = 24,
    private readonly intervalMs = 100,
    readonly enabled = stream.isTTY === true,
  ) {}

  /** Redraws with `fraction` (0..1) of the bar full and `text` after it; `force` ignores the rate limit. */
  update(fraction: number, text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    this.stream.write(`\r${renderBar(fraction, this.width)} ${text}\x1b[K`);
    this.drawn = true;
  }

  /** Clears the line so what follows starts clean. */
  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/** `[#######---------]` for a fraction clamped to 0..1. */
export function renderBar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}
