// The API client: every call carries the token as a bearer header (never a cookie), asks
// for a token when the server answers 401, learns the token's role from /whoami (a viewer
// is read-only), and remembers a 403 on a write as "read-only" too.

const TOKEN_KEY = 'switchyard.token';
const listeners = new Set();

/** Session state shared by the views. */
export const session = {
  /** Set when the token is a viewer's (from /whoami, or a write refused with 403). */
  readOnly: false,
  /** The token's role (`viewer`, `operator`, `admin`) once known. */
  role: null,
};

/** An error answer, with the API's `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  emit();
}

/** Called when the session changes (token, read-only). */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit() {
  for (const fn of listeners) fn(session);
}

/** Asks the server who the token is; a viewer's token makes the session read-only. */
export async function loadRole() {
  try {
    const me = await api('/whoami');
    session.role = me.role;
    session.readOnly = me.role === 'viewer';
    emit();
  } catch {
    // An older server without /whoami: a 403 on a write still marks the session read-only.
  }
}

export function markReadOnly() {
  if (!session.readOnly) {
    session.readOnly = true;
    emit();
  }
}

// One token prompt at a time: every caller that got a 401 waits for the same answer.
let tokenPrompt = null;
let askForToken = null;

/** Installs the function that asks the user for a token (resolves once one is set). */
export function setTokenPrompt(fn) {
  askForToken = fn;
}

/** Waits for the user to give a token. */
export function needToken(message) {
  if (!tokenPrompt) {
    tokenPrompt = askForToken(message).finally(() => {
      tokenPrompt = null;
    });
  }
  return tokenPrompt;
}

/** Headers for a request: the bearer token when there is one. */
export function authHeaders(extra = {}) {
  const headers = {...extra};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  return headers;
}

async function parse(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return {error: {code: 'bad_response', message: text.slice(0, 200)}};
  }
}

/** Calls `/api/v1{path}`; resolves with the JSON answer or throws an ApiError. */
export async function api(path, {method = 'GET', body} = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = authHeaders({Accept: 'application/json'});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    if (res.status === 401 && attempt < 5) {
      const data = await parse(res);
      await needToken(token() ? (data?.error?.message ?? 'That token was refused.') : null);
      continue;
    }
    const data = await parse(res);
    if (res.status === 403 && method !== 'GET') markReadOnly();
    if (!res.ok) {
      throw new ApiError(res.status, data?.error?.code ?? 'error',
        data?.error?.message ?? `${res.status} ${res.statusText}`);
    }
    return data;
  }
}

/** URL-encodes one path segment. */
export const enc = encodeURIComponent;
