// Pure formatting helpers: numbers and times as the panel shows them and as a
// screen reader says them.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units, as the site's quotas are written (e.g. "100 GiB"). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '?';
  }
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** A countdown as a clock: "3:05:09", or "5:09" under an hour. */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h}:${pad(m)}:${pad(rest)}` : `${m}:${pad(rest)}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Time left in words, to the minute ("3 hours 5 minutes"): what the live region
 * announces, so it changes at most once a minute.
 */
export function formatSpoken(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return 'less than a minute';
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h === 0) {
    return plural(m, 'minute');
  }
  return m === 0 ? plural(h, 'hour') : `${plural(h, 'hour')} ${plural(m, 'minute')}`;
}

/** "just now", "5 minutes ago", "2 hours ago". */
export function formatAgo(then: Date, now: Date): string {
  const s = Math.floor((now.getTime() - then.getTime()) / 1000);
  if (s < 60) {
    return 'just now';
  }
  if (s < 3600) {
    return `${plural(Math.floor(s / 60), 'minute')} ago`;
  }
  if (s < 86400) {
    return `${plural(Math.floor(s / 3600), 'hour')} ago`;
  }
  return `${plural(Math.floor(s / 86400), 'day')} ago`;
}

/** Percent used, or null when there is no limit. */
export function percentUsed(used: number, limit: number | null): number | null {
  if (limit === null || limit <= 0) {
    return null;
  }
  // Floored: "100%" only when the limit is reached.
  return Math.floor((used / limit) * 100);
}

/** A wall-clock time in the browser's locale, to the minute ("2:13 PM", "14:13"). */
export function formatTime(when: Date): string {
  return when.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
}
