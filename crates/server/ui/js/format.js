// Formatting of times, durations, ids and payloads.

const units = [
  ['d', 86400000],
  ['h', 3600000],
  ['m', 60000],
  ['s', 1000],
];

/** "850 ms", "3.2 s", "4m 10s", "2h 5m". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 0) ms = 0;
  if (ms < 1) return '<1 ms';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  const parts = [];
  let rest = ms;
  for (const [unit, size] of units) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join(' ');
}

/** Milliseconds between two RFC 3339 times (the second defaults to now). */
export function between(start, end) {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : Date.now();
  return b - a;
}

/** "12 s ago", "3 min ago", "yesterday 14:02"... */
export function ago(time) {
  if (!time) return '';
  const ms = Date.now() - Date.parse(time);
  if (ms < 0) return `in ${duration(-ms)}`;
  if (ms < 5000) return 'just now';
  if (ms < 60000) return `${Math.floor(ms / 1000)} s ago`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ago`;
  if (ms < 86400000) return `${Math.floor(ms / 3600000)} h ago`;
  return absolute(time);
}

/** Local date and time, to the second. */
export function absolute(time) {
  if (!time) return '';
  const d = new Date(time);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** Time of day with milliseconds. */
export function clock(time) {
  if (!time) return '';
  const d = new Date(time);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The distinguishing tail of a UUIDv7 (its head is a timestamp shared by neighbours). */
export function shortId(id) {
  return id ? `…${String(id).slice(-8)}` : '';
}

/** Pretty JSON for display (as text). */
export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** One line of JSON, cut at `max` characters. */
export function oneLine(value, max = 120) {
  const text = JSON.stringify(value) ?? '';
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** "1 try", "3 tries". */
export function tries(n) {
  return n === 1 ? '1 try' : `${n} tries`;
}
