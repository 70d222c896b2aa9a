// Runs: newest first, filtered by story and status, paged with "Older runs" (keyset:
// `before=`), and updated live from the event stream without reloading.

import {api, enc} from '../api.js';
import {h, mount} from '../dom.js';
import {absolute, ago, between, duration, shortId} from '../format.js';
import {badge} from '../widgets.js';

const STATUSES = ['running', 'succeeded', 'failed'];
const PAGE = 50;

function filterHash(filter) {
  const q = new URLSearchParams();
  if (filter.story) q.set('story', filter.story);
  if (filter.status) q.set('status', filter.status);
  const text = q.toString();
  return text ? `#/runs?${text}` : '#/runs';
}

function took(run) {
  if (run.status === 'running') {
    return h('span', {class: 'elapsed', 'data-since': run.started_at}, duration(between(run.started_at)));
  }
  return duration(between(run.started_at, run.finished_at));
}

function runRow(run) {
  const link = `#/runs/${run.id}`;
  const tr = h('tr', {'data-run': run.id, 'data-status': run.status, class: 'clickable'},
    h('td', {}, badge(run.status)),
    h('td', {}, h('a', {href: link, class: 'mono', title: run.id}, shortId(run.id))),
    h('td', {}, h('a', {href: `#/stories/${enc(run.story)}`}, run.story)),
    h('td', {class: 'mono small'}, run.trigger_agent),
    h('td', {title: absolute(run.started_at), class: 'when', 'data-time': run.started_at}, ago(run.started_at)),
    h('td', {class: 'num'}, took(run)),
    h('td', {class: 'error-cell', title: run.error ?? ''}, run.error ?? ''));
  tr.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    location.hash = link;
  });
  return tr;
}

export async function render(root, params, {subscribe}) {
  const filter = {story: params.story || '', status: STATUSES.includes(params.status) ? params.status : ''};
  const query = (before) => {
    const q = new URLSearchParams({limit: String(PAGE)});
    if (filter.story) q.set('story', filter.story);
    if (filter.status) q.set('status', filter.status);
    if (before) q.set('before', before);
    return `/runs?${q}`;
  };
  const [stories, first] = await Promise.all([api('/stories'), api(query(null))]);
  const runs = new Map(first.runs.map((r) => [r.id, r]));
  let next = first.next_before;

  const body = h('tbody', {}, first.runs.map(runRow));
  const empty = h('div', {class: 'empty-inline muted'},
    filter.story || filter.status ? 'No runs match these filters yet.' : 'No runs yet. Post to a webhook to start one; it will appear here at once.');
  const more = h('button', {class: 'btn', type: 'button'}, 'Older runs');
  const footer = h('div', {class: 'table-foot'});
  const count = h('span', {class: 'muted small'});
  const table = h('div', {class: 'card table-wrap'},
    h('table', {class: 'table runs'},
      h('thead', {}, h('tr', {},
        h('th', {}, 'Status'), h('th', {}, 'Run'), h('th', {}, 'Story'), h('th', {}, 'Trigger'),
        h('th', {}, 'Started'), h('th', {class: 'num'}, 'Took'), h('th', {}, 'Error'))),
      body),
    empty, footer);
  const refreshFoot = () => {
    empty.hidden = runs.size > 0;
    count.textContent = `${runs.size} run${runs.size === 1 ? '' : 's'} shown`;
    mount(footer, count, next ? more : null);
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const page = await api(query(next));
      for (const r of page.runs) {
        if (runs.has(r.id)) continue;
        runs.set(r.id, r);
        body.append(runRow(r));
      }
      next = page.next_before;
    } finally {
      more.disabled = false;
      refreshFoot();
    }
  });
  refreshFoot();

  const storySelect = h('select', {'aria-label': 'Story', class: 'select'},
    h('option', {value: ''}, 'All stories'),
    stories.stories.map((s) => h('option', {value: s.name, selected: s.name === filter.story}, s.name)));
  storySelect.addEventListener('change', () => {
    location.hash = filterHash({...filter, story: storySelect.value});
  });
  const statusButtons = h('div', {class: 'segmented', role: 'group', 'aria-label': 'Status'},
    ['', ...STATUSES].map((st) => h('a', {
      href: filterHash({...filter, status: st}),
      class: ['seg', filter.status === st && 'active', st && `seg-${st}`],
      'data-filter-status': st || 'all',
      'aria-pressed': String(filter.status === st),
    }, st || 'All')));

  mount(root,
    h('div', {class: 'page-head'},
      h('div', {},
        h('h1', {}, 'Runs'),
        h('p', {class: 'muted'}, 'Newest first. New runs and status changes appear live.'))),
    h('div', {class: 'filters'}, storySelect, statusButtons),
    table);

  // Live: insert new runs at the top (when they match the filters), update the others.
  const off = subscribe((m) => {
    if (m.type === 'reconnected') {
      // Whatever ended while we were away: refresh the rows we show.
      for (const id of runs.keys()) api(`/runs/${id}`).then((d) => upsert(d.run)).catch(() => {});
      return;
    }
    if (m.type !== 'run') return;
    upsert(m.data);
  });
  function upsert(run) {
    if (filter.story && run.story !== filter.story) return;
    const existing = body.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
    if (existing) {
      runs.set(run.id, run);
      existing.replaceWith(runRow(run));
      return;
    }
    if (filter.status && run.status !== filter.status) return;
    // Ids are time-ordered (UUIDv7): keep the rows newest first.
    const after = [...body.querySelectorAll('tr[data-run]')].find((tr) => tr.dataset.run < run.id);
    if (!after && next) return; // older than this page: "Older runs" will bring it
    runs.set(run.id, run);
    const tr = runRow(run);
    tr.classList.add('fresh');
    body.insertBefore(tr, after ?? null);
    refreshFoot();
  }

  // Times and running durations tick.
  const timer = setInterval(() => {
    for (const el of body.querySelectorAll('.elapsed')) el.textContent = duration(between(el.dataset.since));
    for (const el of body.querySelectorAll('.when')) el.textContent = ago(el.dataset.time);
  }, 1000);
  return () => {
    off();
    clearInterval(timer);
  };
}
