// A story as a graph: agents are nodes, `from` references are edges (error edges dashed and
// red), laid out in layers by depth (longest path from a source), drawn in SVG.

import {s} from './dom.js';

const NODE_W = 188;
const NODE_H = 58;
const GAP_X = 40;
const GAP_Y = 70;
const PAD = 24;

/** Splits `a.error` into its agent and the error flag. */
export function parseFrom(ref) {
  return ref.endsWith('.error') ? {agent: ref.slice(0, -6), error: true} : {agent: ref, error: false};
}

/**
 * Positions for the agents of a story: `{nodes, edges, width, height}`.
 * Layers by longest path from a source; within a layer, ordered by the mean position of
 * the parents (two sweeps), which keeps most edges short and uncrossed.
 */
export function layout(agents) {
  const nodes = agents.map((a, index) => ({name: a.name, type: a.type, index, parents: [], children: [], depth: 0}));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const edges = [];
  for (const a of agents) {
    for (const ref of a.from ?? []) {
      const {agent, error} = parseFrom(ref);
      const from = byName.get(agent);
      const to = byName.get(a.name);
      if (!from || !to) continue;
      edges.push({from: from.name, to: to.name, error});
      to.parents.push(from);
      from.children.push(to);
    }
  }
  // Longest-path depth, in topological order (stories are acyclic; a cycle would only stop
  // the deepening, never loop).
  const indegree = new Map(nodes.map((n) => [n, n.parents.length]));
  const queue = nodes.filter((n) => n.parents.length === 0);
  const seen = new Set();
  while (queue.length) {
    const n = queue.shift();
    seen.add(n);
    for (const c of n.children) {
      c.depth = Math.max(c.depth, n.depth + 1);
      indegree.set(c, indegree.get(c) - 1);
      if (indegree.get(c) === 0) queue.push(c);
    }
  }
  for (const n of nodes) if (!seen.has(n)) n.depth = Math.max(n.depth, 0);

  const layers = [];
  for (const n of nodes) (layers[n.depth] ??= []).push(n);
  for (let i = 0; i < layers.length; i++) layers[i] ??= [];
  const order = (layer) => layer.forEach((n, i) => { n.slot = i; });
  layers.forEach(order);
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const layer of layers.slice(1)) {
      const key = (n) => (n.parents.length ? n.parents.reduce((sum, p) => sum + p.slot, 0) / n.parents.length : n.slot);
      layer.sort((a, b) => key(a) - key(b) || a.index - b.index);
      order(layer);
    }
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = PAD * 2 + layers.length * NODE_H + Math.max(0, layers.length - 1) * GAP_Y;
  for (const layer of layers) {
    const span = layer.length * NODE_W + (layer.length - 1) * GAP_X;
    const left = (width - span) / 2;
    layer.forEach((n, i) => {
      n.x = left + i * (NODE_W + GAP_X);
      n.y = PAD + n.depth * (NODE_H + GAP_Y);
    });
  }
  return {nodes, edges, width, height, byName};
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Draws a layout as an SVG element; `onSelect(name)` is called when a node is chosen. */
export function draw(g, {selected, onSelect}) {
  const defs = s('defs', {},
    s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse'},
      s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrow'})),
    s('marker', {id: 'arrow-error', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse'},
      s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrow arrow-error'})));

  const edgeEls = g.edges.map((e) => {
    const a = g.byName.get(e.from);
    const b = g.byName.get(e.to);
    const x1 = a.x + NODE_W / 2 + (e.error ? 14 : 0);
    const y1 = a.y + NODE_H;
    const x2 = b.x + NODE_W / 2 + (e.error ? 14 : 0);
    const y2 = b.y - 2;
    const bend = Math.max(30, (y2 - y1) / 2);
    const d = `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`;
    const group = s('g', {class: ['edge', e.error && 'edge-error'], 'data-from': e.from, 'data-to': e.to},
      s('path', {d, 'marker-end': e.error ? 'url(#arrow-error)' : 'url(#arrow)'}));
    if (e.error) {
      group.append(s('text', {x: (x1 + x2) / 2 + 10, y: (y1 + y2) / 2 + 4, class: 'edge-label'}, 'on error'));
    }
    return group;
  });

  const nodeEls = g.nodes.map((n) => {
    const node = s('g', {
      class: ['node', n.name === selected && 'selected'],
      'data-agent': n.name,
      'data-type': n.type,
      transform: `translate(${n.x},${n.y})`,
      tabindex: '0',
      role: 'button',
      'aria-label': `${n.name} (${n.type})`,
    },
    s('title', {}, `${n.name} — ${n.type}`),
    s('rect', {class: 'node-box', width: NODE_W, height: NODE_H, rx: '10'}),
    s('rect', {class: 'node-accent', width: '4', height: NODE_H - 22, x: '9', y: '11', rx: '2'}),
    s('text', {class: 'node-type', x: '22', y: '23'}, n.type.replace('_', ' ').toUpperCase()),
    s('text', {class: 'node-name', x: '22', y: '43'}, truncate(n.name, 20)));
    const choose = () => onSelect(n.name);
    node.addEventListener('click', choose);
    node.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        choose();
      }
    });
    return node;
  });

  return s('svg', {
    class: 'graph',
    viewBox: `0 0 ${g.width} ${g.height}`,
    width: g.width,
    height: g.height,
    role: 'img',
    'aria-label': 'Agents of the story and how events flow between them',
  }, defs, ...edgeEls, ...nodeEls);
}
