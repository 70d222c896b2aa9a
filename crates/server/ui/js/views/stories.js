// Stories: what is loaded, its webhooks, and how its runs went in the last hour and day.

import {api} from '../api.js';
import {h, mount, throttle} from '../dom.js';
import {badge} from '../widgets.js';

const STATUSES = ['running', 'succeeded', 'failed'];

function counts(story, window, stats) {
  const c = stats?.[window] ?? {};
  const total = STATUSES.reduce((sum, st) => sum + (c[st] ?? 0), 0);
  if (!total) return h('span', {class: 'counts counts-empty'}, 'no runs');
  return h('span', {class: 'counts'}, STATUSES.filter((st) => c[st]).map((st) =>
    h('a', {class: ['count', `count-${st}`], href: `#/runs?story=${encodeURIComponent(story)}&status=${st}`,
      title: `${c[st]} ${st}`, 'data-status': st},
    h('span', {class: 'count-dot'}), String(c[st]), h('span', {class: 'count-label'}, st))));
}

function row(story, stats) {
  const link = `#/stories/${encodeURIComponent(story.name)}`;
  return h('tr', {'data-story': story.name},
    h('td', {class: 'story-cell'},
      h('a', {class: 'story-name', href: link}, story.name),
      story.description ? h('div', {class: 'muted story-desc'}, story.description) : null),
    h('td', {}, story.enabled ? badge('enabled') : badge('disabled')),
    h('td', {class: 'hooks'}, story.webhooks.length
      ? story.webhooks.map((w) => h('div', {class: 'hook'},
        h('span', {class: 'method'}, 'POST'),
        h('code', {title: `agent ${w.agent}`}, `${location.origin}${w.path}`)))
      : h('span', {class: 'muted'}, '—')),
    h('td', {class: 'num'}, String(story.agents)),
    h('td', {class: 'stat-hour'}, counts(story.name, 'hour', stats)),
    h('td', {class: 'stat-day'}, counts(story.name, 'day', stats)));
}

export async function render(root, _params, {subscribe}) {
  const [list, stats] = await Promise.all([api('/stories'), api('/runs/stats')]);
  const stories = [...list.stories].sort((a, b) => a.name.localeCompare(b.name));
  const body = h('tbody', {});
  const fill = (st) => mount(body, stories.map((s) => row(s, st.stories?.[s.name])));
  fill(stats);

  mount(root,
    h('div', {class: 'page-head'},
      h('div', {},
        h('h1', {}, 'Stories'),
        h('p', {class: 'muted'}, `${stories.length} loaded from the stories directory. Stories live in git; this view is for looking, following and replaying.`)),
      h('a', {class: 'btn', href: '#/runs'}, 'All runs →')),
    stories.length
      ? h('div', {class: 'card table-wrap'},
        h('table', {class: 'table stories'},
          h('thead', {}, h('tr', {},
            h('th', {}, 'Story'), h('th', {}, 'State'), h('th', {}, 'Webhooks'),
            h('th', {class: 'num'}, 'Agents'), h('th', {}, 'Last hour'), h('th', {}, 'Last 24 h'))),
          body))
      : h('section', {class: 'empty card'},
        h('h2', {}, 'No stories loaded'),
        h('p', {class: 'muted'}, 'Add YAML files to the stories directory; the server reloads it when it changes.')));

  // Runs moving change the counts: refresh them, at most every two seconds.
  const refresh = throttle(async () => {
    try {
      fill(await api('/runs/stats'));
    } catch {
      // The next change retries.
    }
  }, 2000);
  const off = subscribe((m) => {
    if (m.type === 'run' || m.type === 'reconnected') refresh();
  });
  return () => {
    off();
    refresh.cancel();
  };
}
