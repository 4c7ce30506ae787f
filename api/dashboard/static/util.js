// Shared by the dashboard's pages: the API client, the poller and formatting.

export const TOKEN_KEY = "hpsearch.token";
export const TEAM_KEY = "hpsearch.team";
const POLL_MS = 2000;

/** The token was refused: the user must sign in again. */
export class Unauthorized extends Error {}

/**
 * GET an /api/v1 path with the signed-in token. With `etag`, sends If-None-Match and answers
 * `{data: null}` on 304 so callers keep what they have.
 */
export async function api(path, etag = null) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(path, { headers });
  if (response.status === 401) throw new Unauthorized();
  if (response.status === 304) return { data: null, etag };
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error(body?.error?.message ?? `${path}: HTTP ${response.status}`);
  }
  return { data: await response.json(), etag: response.headers.get("ETag") };
}

/**
 * Run `step` now and then every POLL_MS after it settles (never overlapping); errors show in
 * the status line and polling goes on. Returns the function that stops it.
 */
export function poll(step, onUnauthorized) {
  let timer = null;
  let stopped = false;
  const status = document.getElementById("status");
  const run = async () => {
    try {
      await step();
      status.textContent = "";
    } catch (error) {
      if (error instanceof Unauthorized) return onUnauthorized();
      status.textContent = `Could not refresh: ${error.message}`;
    }
    if (!stopped) timer = setTimeout(run, POLL_MS);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Text made safe to put into innerHTML. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole number as it is, any other with 4 significant digits; a dash for none. */
export function num(value) {
  if (value === null || value === undefined) return "—";
  return Number.isInteger(value) ? String(value) : Number(value).toPrecision(4);
}

/** Seconds as e.g. "1h 02m", "3m 05s", "12s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${s}s`;
}

/** Seconds from `start` to `end` (or now, while it goes on). */
export function elapsed(start, end) {
  return ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
}

/** A timestamp in the user's locale. */
export function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "—";
}

/** A progress bar of done out of total. */
export function bar(done, total, big = false) {
  const percent = total ? Math.min(100, (100 * done) / total) : 0;
  return `<span class="bar${big ? " big" : ""}"><span style="width:${percent}%"></span></span>`;
}

/** A state or status as a coloured badge. */
export function badge(state) {
  return `<span class="badge ${esc(state)}">${esc(state)}</span>`;
}
