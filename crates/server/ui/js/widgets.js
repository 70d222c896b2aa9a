// Small pieces shared by the views: status badges, payload blocks, operator buttons.

import {session} from './api.js';
import {h} from './dom.js';
import {pretty} from './format.js';

/** A coloured status label: running, succeeded, failed, queued, skipped, error, event. */
export function badge(status, text = status) {
  return h('span', {class: ['badge', `badge-${status}`], 'data-status': status}, text);
}

/** A button that changes something: disabled for read-only (viewer) tokens. */
export function opButton(label, onclick, extraClass = '') {
  const b = h('button', {class: ['btn', 'op', extraClass], type: 'button', onclick}, label);
  if (session.readOnly) {
    b.disabled = true;
    b.title = 'Your token can look but not change anything (viewer).';
  }
  return b;
}

/** A payload, pretty-printed as text in a monospace block. */
export function jsonBlock(value, extraClass = '') {
  return h('pre', {class: ['json', extraClass]}, pretty(value));
}

/** A payload that folds away when large. */
export function payload(value, {open} = {}) {
  const text = pretty(value);
  const big = text.length > 1500 || text.split('\n').length > 30;
  const details = h('details', {class: 'payload', open: open ?? !big},
    h('summary', {}, big ? `Payload (${text.length.toLocaleString()} characters)` : 'Payload'),
    h('pre', {class: 'json'}, text));
  return details;
}

/** A labelled value for a key/value grid. */
export function fact(label, ...value) {
  return h('div', {class: 'fact'}, h('dt', {}, label), h('dd', {}, ...value));
}
