/** HERALD_CHAOS_MINUTES: 0 (default) for the short campaign, else the minutes of faults of a long one. */
export function minutesFromEnv(): number {
  const m = Number(process.env.HERALD_CHAOS_MINUTES ?? '0');
  if (!Number.isFinite(m) || m < 0 || m > 24 * 60) {
    throw new Error(`HERALD_CHAOS_MINUTES must be 0..1440, got ${process.env.HERALD_CHAOS_MINUTES}`);
  }
  return m;
}
