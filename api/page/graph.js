// The topology as a picture: peers on a circle (this router at the top), a line for each
// connection. Solid when both ends report it, dashed when only one does (coming up or going down).
// Deterministic layout (sorted by name) so a redraw every second does not make nodes jump.

const SVG = 'http://www.w3.org/2000/svg';
const W = 640,
  H = 380,
  R = 22;

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * nodes: [{ id, label, sub, status: 'self'|'reachable'|'unreachable'|'gone' }]
 * edges: [{ a, b, established }] between node ids (one per pair).
 */
export function drawGraph(svg, nodes, edges) {
  const ordered = [...nodes].sort((x, y) =>
    x.status === 'self' ? -1 : y.status === 'self' ? 1 : x.id.localeCompare(y.id),
  );
  const pos = new Map();
  const cx = W / 2,
    cy = H / 2 - 8,
    radius = ordered.length <= 1 ? 0 : Math.min(W, H) / 2 - 60;
  ordered.forEach((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / ordered.length;
    pos.set(n.id, { x: cx + radius * Math.cos(a), y: cy + radius * Math.sin(a) });
  });
  const parts = [];
  for (const e of edges) {
    const p = pos.get(e.a),
      q = pos.get(e.b);
    if (!p || !q) continue;
    parts.push(svgEl('line', { class: `edge${e.established ? '' : ' pending'}`, x1: p.x, y1: p.y, x2: q.x, y2: q.y }));
  }
  for (const n of ordered) {
    const { x, y } = pos.get(n.id);
    const g = svgEl('g', {
      class: 'node',
      'data-peer': n.id,
      'data-status': n.status,
      transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
    });
    g.append(svgEl('title', {}, `${n.label} ${n.id} (${n.status})`));
    g.append(svgEl('circle', { r: R }));
    if (n.status === 'unreachable' || n.status === 'gone') g.append(svgEl('text', { class: 'initial', y: 6 }, '×'));
    g.append(svgEl('text', { class: 'label', y: R + 16 }, n.label || n.id.slice(0, 12)));
    g.append(svgEl('text', { class: 'sub', y: R + 29 }, n.sub));
    if (n.status === 'unreachable' || n.status === 'gone')
      g.append(svgEl('text', { class: 'mark', y: -R - 6 }, n.status.toUpperCase()));
    parts.push(g);
  }
  svg.replaceChildren(...parts);
}
