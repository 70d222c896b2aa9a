// Building the DOM from data without ever parsing HTML: every string becomes a text node
// or an attribute value. (The page's Content-Security-Policy enforces Trusted Types, so an
// HTML string could not reach the DOM even by mistake.)

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class' && Array.isArray(value)) {
      el.setAttribute('class', value.filter(Boolean).join(' '));
    } else if (key === 'text') {
      el.textContent = String(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes, strings (as text), numbers, arrays; skips null/false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/'}, 'Stories'). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Runs `fn` at most once per `ms`, on the trailing edge. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Runs `fn` once, `ms` after the first of a burst of calls (never starved by more calls). */
export function throttle(fn, ms) {
  let timer = null;
  const wrapped = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return wrapped;
}

/** A short notice in the corner. */
export function toast(message, kind = 'info', link = null) {
  const box = document.getElementById('toasts');
  const item = h('div', {class: ['toast', `toast-${kind}`]}, h('span', {}, message),
    link ? h('a', {href: link.href}, link.text) : null);
  box.append(item);
  setTimeout(() => item.classList.add('toast-leaving'), 4500);
  setTimeout(() => item.remove(), 5000);
}
