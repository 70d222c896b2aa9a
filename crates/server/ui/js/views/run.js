// One run: a timeline of its agents (status, tries, duration) and its events as a tree —
// each event, the agents it was delivered to, what they emitted — with payloads, errors and
// a replay button per event.

import {api, enc} from '../api.js';
import {h, mount, s, throttle, toast} from '../dom.js';
import {absolute, ago, between, clock, duration, shortId, tries} from '../format.js';
import {badge, fact, opButton, payload} from '../widgets.js';

/**
 * Which job emitted each event: of the jobs that delivered its parent to its agent, the
 * latest created before it (a replay adds a second job for the same input and agent).
 * Events no job explains (the source event) are the roots.
 */
function assignEvents(events, jobs) {
  const byJob = new Map(jobs.map((j) => [j.id, []]));
  const roots = [];
  for (const e of events) {
    const candidates = jobs.filter((j) => j.input_event_id === e.parent_id && j.agent === e.agent);
    const before = candidates.filter((j) => Date.parse(j.created_at) <= Date.parse(e.created_at));
    const job = before[before.length - 1] ?? candidates[0];
    if (job) byJob.get(job.id).push(e);
    else roots.push(e);
  }
  return {byJob, roots};
}

function errorOf(e) {
  return e.kind === 'error' && e.payload?.error ? e.payload.error : null;
}

function timeline(detail) {
  const {run, jobs} = detail;
  const start = Date.parse(run.started_at);
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  const span = Math.max(1, end - start);
  const x = (t) => Math.min(1000, Math.max(0, ((Date.parse(t) - start) / span) * 1000));
  const rows = jobs.map((j) => {
    const from = x(j.created_at);
    const began = j.started_at ? x(j.started_at) : from;
    const until = j.finished_at ? x(j.finished_at) : 1000;
    return h('tr', {'data-job': j.id, 'data-agent': j.agent, 'data-state': j.state},
      h('td', {class: 'mono'}, j.agent),
      h('td', {}, badge(j.state)),
      h('td', {class: 'num'}, tries(j.attempts)),
      h('td', {class: 'num'}, j.finished_at ? duration(between(j.started_at ?? j.created_at, j.finished_at)) : waiting(j)),
      h('td', {class: 'bar-cell'},
        s('svg', {class: 'bar', viewBox: '0 0 1000 12', preserveAspectRatio: 'none', 'aria-hidden': 'true'},
          s('rect', {class: 'bar-wait', x: from, y: '3', width: Math.max(2, until - from), height: '6', rx: '2'}),
          s('rect', {class: ['bar-run', `bar-${j.state}`], x: began, y: '1', width: Math.max(3, until - began), height: '10', rx: '2'}))));
  });
  return h('div', {class: 'card table-wrap'},
    h('div', {class: 'card-head'}, h('h2', {}, 'Agents'),
      h('span', {class: 'muted small'}, `${jobs.length} execution${jobs.length === 1 ? '' : 's'} over ${duration(span)}`)),
    h('table', {class: 'table timeline'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Agent'), h('th', {}, 'Status'), h('th', {class: 'num'}, 'Tries'),
        h('th', {class: 'num'}, 'Took'), h('th', {class: 'bar-head'}, 'Timeline'))),
      h('tbody', {}, rows)));
}

function waiting(job) {
  if (job.state !== 'queued') return '';
  const due = Date.parse(job.due_at) - Date.now();
  return due > 1000 ? `due in ${duration(due)}` : 'running…';
}

function eventNode(e, tree, replay, nested = false) {
  const err = errorOf(e);
  const jobs = tree.jobs.filter((j) => j.input_event_id === e.id);
  return h('li', {class: ['tree-event', e.kind === 'error' && 'is-error'], 'data-event': e.id},
    h('div', {class: 'event-card'},
      h('div', {class: 'event-head'},
        nested ? null : h('span', {class: 'event-agent'}, e.agent),
        badge(e.kind === 'error' ? 'error' : 'event', e.kind === 'error' ? 'error event' : nested ? 'emitted' : 'event'),
        h('span', {class: 'muted small', title: absolute(e.created_at)}, clock(e.created_at)),
        h('code', {class: 'small muted', title: e.id}, shortId(e.id)),
        h('span', {class: 'grow'}),
        opButton('Replay', () => replay(e), 'btn-small replay')),
      err ? h('div', {class: 'callout callout-error'},
        h('strong', {}, err.kind), ' ', err.message,
        err.attempts ? h('span', {class: 'muted'}, ` (after ${tries(err.attempts)})`) : null) : null,
      payload(e.payload, {open: tree.open.get(e.id)})),
    jobs.length ? h('ol', {class: 'tree'}, jobs.map((j) => jobNode(j, tree, replay))) : null);
}

function jobNode(j, tree, replay) {
  const emitted = tree.byJob.get(j.id) ?? [];
  const took = j.finished_at ? duration(between(j.started_at ?? j.created_at, j.finished_at)) : waiting(j);
  return h('li', {class: 'tree-job', 'data-job': j.id, 'data-agent': j.agent, 'data-state': j.state},
    h('div', {class: 'job-line'},
      h('span', {class: 'job-arrow', 'aria-hidden': 'true'}, '→'),
      h('span', {class: 'job-agent'}, j.agent),
      badge(j.state),
      h('span', {class: 'muted small'}, tries(j.attempts)),
      took ? h('span', {class: 'muted small'}, took) : null),
    j.error ? h('div', {class: 'callout callout-error job-error'}, j.error) : null,
    emitted.length ? h('ol', {class: 'tree'}, emitted.map((e) => eventNode(e, tree, replay, true))) : null);
}

export async function render(root, params, {subscribe}) {
  const id = params.id;
  let detail = await api(`/runs/${enc(id)}`);

  async function replay(e) {
    try {
      const r = await api(`/events/${enc(e.id)}/replay`, {method: 'POST'});
      const n = r.jobs?.length ?? 0;
      toast(`Replayed ${e.agent}'s event to ${n} agent${n === 1 ? '' : 's'}`, 'ok');
      await reload();
    } catch (err) {
      toast(err.status === 403 ? 'Your token cannot replay (viewer).' : err.message, 'error');
    }
  }

  function draw() {
    const {run, events, jobs} = detail;
    // Keep each payload folded or unfolded as the user left it.
    const open = new Map([...root.querySelectorAll('[data-event] > .event-card > details')].map((d) => [d.closest('[data-event]').dataset.event, d.open]));
    const {byJob, roots} = assignEvents(events, jobs);
    const tree = {jobs, byJob, open};
    const took = run.finished_at
      ? duration(between(run.started_at, run.finished_at))
      : h('span', {class: 'elapsed', 'data-since': run.started_at}, duration(between(run.started_at)));
    mount(root,
      h('nav', {class: 'crumbs'}, h('a', {href: '#/runs'}, 'Runs'), h('span', {}, '/'), h('span', {class: 'mono'}, run.id)),
      h('div', {class: 'page-head'},
        h('div', {},
          h('h1', {}, 'Run ', badge(run.status)),
          h('p', {class: 'mono muted small'}, run.id)),
        h('a', {class: 'btn', href: `#/runs?story=${enc(run.story)}`}, `Runs of ${run.story} →`)),
      h('dl', {class: 'facts facts-row run-facts'},
        fact('Story', h('a', {href: `#/stories/${enc(run.story)}`}, run.story)),
        fact('Started', h('span', {title: absolute(run.started_at)}, ago(run.started_at))),
        fact('Took', took),
        fact('Trigger', h('span', {class: 'mono'}, run.trigger_agent)),
        fact('Started by', run.started_by ?? '—'),
        fact('Pending jobs', String(run.pending_jobs))),
      run.error ? h('div', {class: 'callout callout-error run-error'}, h('strong', {}, 'Failed: '), run.error) : null,
      timeline(detail),
      h('section', {class: 'card'},
        h('div', {class: 'card-head'}, h('h2', {}, 'Events'),
          h('span', {class: 'muted small'}, 'Each event, the agents it went to, and what they emitted')),
        h('ol', {class: 'tree tree-root'}, roots.map((e) => eventNode(e, tree, replay)))));
  }

  async function reload() {
    try {
      detail = await api(`/runs/${enc(id)}`);
      draw();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  draw();
  const refresh = throttle(reload, 300);
  const off = subscribe((m) => {
    if ((m.type === 'event' && m.data.run_id === id) || (m.type === 'run' && m.data.id === id) || m.type === 'reconnected') refresh();
  });
  const timer = setInterval(() => {
    for (const el of root.querySelectorAll('.elapsed')) el.textContent = duration(between(el.dataset.since));
  }, 1000);
  return () => {
    off();
    refresh.cancel();
    clearInterval(timer);
  };
}
