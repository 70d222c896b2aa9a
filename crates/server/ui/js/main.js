// The web view's entry point: a hash router over four views, the token dialog, the live feed.

import {ApiError, loadRole, onSession, session, setToken, setTokenPrompt, token} from './api.js';
import {h, mount} from './dom.js';
import * as live from './live.js';
import * as storiesView from './views/stories.js';
import * as storyView from './views/story.js';
import * as runsView from './views/runs.js';
import * as runView from './views/run.js';

const routes = [
  {pattern: /^#?\/?$/, view: storiesView, nav: 'stories'},
  {pattern: /^#\/stories\/([^/?]+)(?:\/agents\/([^/?]+))?$/, view: storyView, nav: 'stories',
    params: (m) => ({story: decodeURIComponent(m[1]), agent: m[2] ? decodeURIComponent(m[2]) : null})},
  {pattern: /^#\/runs(?:\?(.*))?$/, view: runsView, nav: 'runs',
    params: (m) => Object.fromEntries(new URLSearchParams(m[1] ?? ''))},
  {pattern: /^#\/runs\/([0-9a-fA-F-]+)$/, view: runView, nav: 'runs', params: (m) => ({id: m[1]})},
];

const root = document.getElementById('view');
let cleanup = null;
let generation = 0;

async function route() {
  const hash = location.hash || '#/';
  const match = routes.map((r) => ({r, m: hash.match(r.pattern)})).find((x) => x.m);
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const mine = ++generation;
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', match?.r.nav === a.dataset.nav);
  }
  if (!match) {
    mount(root, notFound());
    return;
  }
  const params = match.r.params ? match.r.params(match.m) : {};
  mount(root, h('p', {class: 'loading'}, 'Loading…'));
  try {
    const done = await match.r.view.render(root, params, {subscribe: live.subscribe, current: () => mine === generation});
    if (mine === generation) cleanup = done ?? null;
    else if (done) done();
  } catch (e) {
    if (mine !== generation) return;
    mount(root, errorPanel(e));
  }
  window.scrollTo(0, 0);
}

function notFound() {
  return h('section', {class: 'empty'},
    h('h1', {}, 'Nothing here'),
    h('p', {}, h('a', {href: '#/'}, 'Back to the stories')));
}

function errorPanel(e) {
  const status = e instanceof ApiError && e.status ? ` (${e.status})` : '';
  return h('section', {class: 'empty'},
    h('h1', {}, `Could not load this page${status}`),
    h('p', {class: 'muted'}, e.message ?? String(e)),
    h('button', {class: 'btn', type: 'button', onclick: route}, 'Try again'));
}

// The token dialog: shown when the API answers 401.
function promptForToken(message) {
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.hidden = !message;
  error.textContent = message ?? '';
  input.value = '';
  return new Promise((resolve) => {
    const submit = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      form.removeEventListener('submit', submit);
      dialog.close();
      setToken(value);
      session.readOnly = false;
      session.role = null;
      resolve(value);
      // The new token's role (a refused token makes this ask again, like any other call).
      loadRole();
    };
    form.addEventListener('submit', submit);
    // Without a token nothing works: the dialog cannot be dismissed with Escape.
    dialog.addEventListener('cancel', (ev) => ev.preventDefault(), {once: true});
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

function showSession() {
  document.body.classList.toggle('read-only', session.readOnly);
  for (const b of document.querySelectorAll('button.op')) {
    b.disabled = session.readOnly;
    if (session.readOnly) b.title = 'Your token can look but not change anything (viewer).';
  }
  const role = document.getElementById('role');
  role.hidden = !session.readOnly;
  role.textContent = session.readOnly ? 'read-only' : '';
  role.title = session.role ? `This token's role: ${session.role}` : '';
  document.getElementById('signout').hidden = !token();
}

document.getElementById('signout').addEventListener('click', () => {
  setToken(null);
  session.readOnly = false;
  session.role = null;
  showSession();
  loadRole();
  route();
});

setTokenPrompt(promptForToken);
onSession(showSession);
window.addEventListener('hashchange', route);
showSession();
loadRole();
live.start();
route();
