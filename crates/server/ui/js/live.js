// The live feed: one Server-Sent Events stream (`/api/v1/events/stream`) shared by every
// view. It is read with fetch() rather than EventSource so the token travels in the
// Authorization header like every other call (EventSource cannot send headers, and a token
// in a URL would end up in logs). It reconnects with Last-Event-ID, so nothing is missed.

import {authHeaders, needToken, onSession, token} from './api.js';

const listeners = new Set();
let lastId = null;
let started = false;
// The open stream and the token it was opened with: a different token (another user, or
// none after "Forget token") closes it, and it is opened again with the new one.
let connection = null;

/** Receives {type: 'event'|'run'|'reconnected', data}. Returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function dispatch(message) {
  for (const fn of [...listeners]) {
    try {
      fn(message);
    } catch (e) {
      console.error('live listener failed', e);
    }
  }
}

function setState(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  const label = el.querySelector('.live-label');
  if (label) label.textContent = {live: 'live', connecting: 'connecting', reconnecting: 'reconnecting', auth: 'token needed'}[state] ?? state;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the stream (once). */
export function start() {
  if (started) return;
  started = true;
  onSession(() => {
    if (connection && connection.token !== token()) connection.abort.abort();
  });
  run();
}

async function run() {
  let backoff = 500;
  let connectedBefore = false;
  for (;;) {
    const mine = {token: token(), abort: new AbortController()};
    connection = mine;
    try {
      const headers = authHeaders({Accept: 'text/event-stream'});
      if (lastId !== null) headers['Last-Event-ID'] = lastId;
      const res = await fetch('/api/v1/events/stream?payloads=false',
        {headers, cache: 'no-store', credentials: 'omit', signal: mine.abort.signal});
      if (res.status === 401) {
        setState('auth');
        await needToken(token() ? 'That token was refused.' : null);
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      setState('live');
      backoff = 500;
      if (connectedBefore) dispatch({type: 'reconnected', data: null});
      connectedBefore = true;
      await read(res.body);
    } catch (e) {
      if (mine.abort.signal.aborted) {
        // The token changed: reconnect at once with the new one.
        setState('connecting');
        continue;
      }
      console.warn('live stream interrupted', e);
    }
    setState('reconnecting');
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 10000);
  }
}

/** Parses the text/event-stream format (the WHATWG rules we need). */
async function read(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let message = {event: 'message', data: [], id: null};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (message.id !== null) lastId = message.id;
        if (message.data.length) {
          try {
            dispatch({type: message.event, data: JSON.parse(message.data.join('\n'))});
          } catch (e) {
            console.warn('bad stream message', e);
          }
        }
        message = {event: 'message', data: [], id: null};
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') message.event = val;
      else if (field === 'data') message.data.push(val);
      else if (field === 'id') message.id = val;
    }
  }
}
