// A story: its agents as a graph; the selected agent's options and latest events.

import {api, enc} from '../api.js';
import {h, mount, throttle, toast} from '../dom.js';
import {ago, absolute, oneLine, shortId} from '../format.js';
import {draw, layout, parseFrom} from '../graph.js';
import {badge, fact, jsonBlock, opButton, payload} from '../widgets.js';

const COMMON = new Set(['name', 'type', 'from', 'description']);

function optionsOf(agent) {
  const out = {};
  for (const [k, v] of Object.entries(agent.options ?? {})) if (!COMMON.has(k)) out[k] = v;
  return out;
}

function fromList(agent) {
  if (!agent.from?.length) return h('span', {class: 'muted'}, 'a source: starts runs');
  return agent.from.map((ref) => {
    const {agent: name, error} = parseFrom(ref);
    return h('span', {class: ['chip', error && 'chip-error']}, error ? `${name} (errors)` : name);
  });
}

function eventItem(e) {
  return h('li', {class: 'event-item', 'data-event': e.id},
    h('div', {class: 'event-line'},
      badge(e.kind === 'error' ? 'error' : 'event', e.kind),
      h('a', {href: `#/runs/${e.run_id}`, class: 'mono', title: e.run_id}, `run ${shortId(e.run_id)}`),
      h('span', {class: 'muted', title: absolute(e.created_at)}, ago(e.created_at))),
    h('details', {class: 'payload'},
      h('summary', {class: 'mono'}, oneLine(e.payload, 90)),
      jsonBlock(e.payload)));
}

function triggerForm(story, agent) {
  const area = h('textarea', {class: 'mono', rows: '5', spellcheck: 'false', 'aria-label': 'JSON body'}, '{\n  \n}');
  const error = h('p', {class: 'form-error', hidden: true});
  const send = async () => {
    let body;
    try {
      body = area.value.trim() ? JSON.parse(area.value) : null;
    } catch (e) {
      error.hidden = false;
      error.textContent = `Not valid JSON: ${e.message}`;
      return;
    }
    error.hidden = true;
    try {
      const ids = await api(`/stories/${enc(story)}/agents/${enc(agent)}/trigger`, {method: 'POST', body});
      toast('Run started', 'ok', {href: `#/runs/${ids.run_id}`, text: 'Open it →'});
    } catch (e) {
      toast(e.status === 403 ? 'Your token cannot trigger runs (viewer).' : e.message, 'error');
    }
  };
  return h('div', {class: 'trigger'},
    h('h3', {}, 'Trigger'),
    h('p', {class: 'muted small'}, 'Start a run as if this JSON body had been POSTed to the webhook.'),
    area, error, opButton('Trigger run', send, 'btn-primary'));
}

function agentPanel(story, agent, events) {
  if (!agent) {
    return h('div', {class: 'panel-empty muted'}, 'Select an agent to see its options and latest events.');
  }
  const isWebhook = agent.type === 'webhook';
  return h('div', {class: 'agent-panel', 'data-agent': agent.name},
    h('div', {class: 'panel-head'},
      h('h2', {}, agent.name),
      h('span', {class: ['type-tag', `type-${agent.type}`]}, agent.type)),
    agent.description ? h('p', {class: 'muted'}, agent.description) : null,
    h('dl', {class: 'facts'},
      fact('Receives from', fromList(agent)),
      agent.type === 'action' && typeof agent.options?.uses === 'string'
        ? fact('Runs action', h('span', {class: 'mono action-ref'}, agent.options.uses))
        : null),
    h('h3', {}, 'Options'),
    h('p', {class: 'muted small'}, 'As written in the story file; credentials and secrets show as [redacted:NAME].'),
    jsonBlock(optionsOf(agent), 'options'),
    isWebhook ? triggerForm(story.name, agent.name) : null,
    h('h3', {}, 'Latest events'),
    events === null
      ? h('p', {class: 'muted'}, 'Loading…')
      : events.length
        ? h('ol', {class: 'event-list'}, events.map(eventItem))
        : h('p', {class: 'muted'}, 'No events yet.'));
}

export async function render(root, params, {subscribe}) {
  const story = await api(`/stories/${enc(params.story)}`);
  const agents = story.agents;
  let selected = agents.some((a) => a.name === params.agent) ? params.agent : null;
  const graph = layout(agents);
  const graphBox = h('div', {class: 'graph-box'});
  const panel = h('aside', {class: 'card side-panel'});
  let events = null;
  let token = 0;

  const drawGraph = () => mount(graphBox, draw(graph, {selected, onSelect: select}));
  const showPanel = () => mount(panel, agentPanel(story, agents.find((a) => a.name === selected), events));
  async function loadEvents() {
    if (!selected) return;
    const mine = ++token;
    try {
      const page = await api(`/stories/${enc(story.name)}/agents/${enc(selected)}/events?limit=10`);
      if (mine !== token) return;
      events = page.events;
    } catch (e) {
      if (mine !== token) return;
      events = [];
      toast(e.message, 'error');
    }
    // Keep open payloads open across a refresh.
    const open = new Set([...panel.querySelectorAll('.event-item details[open]')].map((d) => d.closest('[data-event]').dataset.event));
    showPanel();
    for (const id of open) panel.querySelector(`[data-event="${CSS.escape(id)}"] details`)?.setAttribute('open', '');
  }
  function select(name) {
    selected = name;
    events = null;
    history.replaceState(null, '', `#/stories/${enc(story.name)}/agents/${enc(name)}`);
    drawGraph();
    showPanel();
    loadEvents();
  }

  const hooks = story.webhooks.map((w) => h('div', {class: 'hook'},
    h('span', {class: 'method'}, 'POST'), h('code', {}, `${location.origin}${w.path}`)));
  mount(root,
    h('nav', {class: 'crumbs'}, h('a', {href: '#/'}, 'Stories'), h('span', {}, '/'), h('span', {}, story.name)),
    h('div', {class: 'page-head'},
      h('div', {},
        h('h1', {}, story.name, ' ', story.enabled ? badge('enabled') : badge('disabled')),
        story.description ? h('p', {class: 'muted'}, story.description) : null),
      h('a', {class: 'btn', href: `#/runs?story=${enc(story.name)}`}, 'Runs of this story →')),
    h('dl', {class: 'facts facts-row'},
      fact('File', h('code', {}, story.file)),
      fact('Agents', String(agents.length)),
      hooks.length ? fact('Webhooks', hooks) : null),
    h('div', {class: 'split'},
      h('section', {class: 'card graph-card'},
        h('div', {class: 'card-head'}, h('h2', {}, 'Graph'),
          h('span', {class: 'legend'},
            h('span', {class: 'legend-item'}, h('span', {class: 'legend-line'}), 'events'),
            h('span', {class: 'legend-item'}, h('span', {class: 'legend-line legend-error'}), 'errors'))),
        graphBox),
      panel));
  drawGraph();
  showPanel();
  loadEvents();

  const refresh = throttle(loadEvents, 500);
  const off = subscribe((m) => {
    if (m.type === 'event' && m.data.story === story.name && m.data.agent === selected) refresh();
    if (m.type === 'reconnected') refresh();
  });
  return () => {
    off();
    refresh.cancel();
  };
}
