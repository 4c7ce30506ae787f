// Shared by the dashboard's pages: the API client, the poller and formatting.

export const TOKEN_KEY = "hpsearch.token";
export const TEAM_KEY = "hpsearch.team";
const POLL_MS = 2000;
/** A trial in one of these states never changes again. */
export const FINISHED = new Set(["complete", "pruned", "failed"]);

/** The token was refused: the user must sign in again. */
export class Unauthorized extends Error {}

/** An error answer of the API: its message, and the field it is about (or null). */
export class ApiError extends Error {
  constructor(message, field = null) {
    super(message);
    this.field = field;
  }
}

const authorization = () => ({ Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` });

async function failure(path, response) {
  if (response.status === 401) return new Unauthorized();
  const body = await response.json().catch(() => null);
  return new ApiError(body?.error?.message ?? `${path}: HTTP ${response.status}`, body?.error?.field ?? null);
}

/**
 * GET an /api/v1 path with the signed-in token. With `etag`, sends If-None-Match and answers
 * `{data: null}` on 304 so callers keep what they have.
 */
export async function api(path, etag = null) {
  const headers = authorization();
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(path, { headers });
  if (response.status === 304) return { data: null, etag };
  if (!response.ok) throw await failure(path, response);
  return { data: await response.json(), etag: response.headers.get("ETag") };
}

/** POST `body` as JSON to an /api/v1 path; answers the JSON the API sent back. */
export async function post(path, body) {
  const headers = { ...authorization(), "Content-Type": "application/json" };
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) throw await failure(path, response);
  return response.json();
}

/** Fetch a file the API serves only with the token, and hand it to the browser as a download. */
export async function download(path, filename) {
  const response = await fetch(path, { headers: authorization() });
  if (!response.ok) throw await failure(path, response);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/**
 * Run `step` now and then every POLL_MS after it settles (never overlapping), until it resolves
 * to true (what it shows can no longer change); errors show in the status line and polling goes
 * on. Returns the function that stops it.
 */
export function poll(step, onUnauthorized) {
  let timer = null;
  let stopped = false;
  const status = document.getElementById("status");
  const run = async () => {
    try {
      if (await step()) stopped = true;
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

/** Seconds as e.g. "1h 02m", "3m 05s", "12s", "340 ms" (a trial can take less than a second). */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.max(0, Math.round(seconds * 1000))} ms`;
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

/** An error as the user reads it: the API's message, naming the field it is about. */
export function describe(error) {
  if (error instanceof Unauthorized) return "The token was refused: sign in again.";
  const { field, message } = error;
  return field && !message.startsWith(`${field}:`) ? `${field}: ${message}` : message;
}
