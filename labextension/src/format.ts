// Pure formatting helpers: numbers and times as the panel shows them and as a
// screen reader says them (words through the translation bundle).

import { TranslationBundle } from '@jupyterlab/translation';

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

function minutes(n: number, trans: TranslationBundle): string {
  return trans._n('%1 minute', '%1 minutes', n);
}

function hours(n: number, trans: TranslationBundle): string {
  return trans._n('%1 hour', '%1 hours', n);
}

/**
 * Time left in words, to the minute ("3 hours 5 minutes"): what the live region
 * announces, so it changes at most once a minute.
 */
export function formatSpoken(seconds: number, trans: TranslationBundle): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return trans.__('less than a minute');
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h === 0) {
    return minutes(m, trans);
  }
  return m === 0 ? hours(h, trans) : trans.__('%1 %2', hours(h, trans), minutes(m, trans));
}

/** "just now", "5 minutes ago", "2 hours ago". */
export function formatAgo(then: Date, now: Date, trans: TranslationBundle): string {
  const s = Math.floor((now.getTime() - then.getTime()) / 1000);
  if (s < 60) {
    return trans.__('just now');
  }
  if (s < 3600) {
    return trans._n('%1 minute ago', '%1 minutes ago', Math.floor(s / 60));
  }
  if (s < 86400) {
    return trans._n('%1 hour ago', '%1 hours ago', Math.floor(s / 3600));
  }
  return trans._n('%1 day ago', '%1 days ago', Math.floor(s / 86400));
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
