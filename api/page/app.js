// The status page: renders the router's report, pushed by /events whenever it changes.
// Plain DOM and textContent only (peer nicknames come from the network: never innerHTML).
import { drawGraph } from './graph.js';

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

const fmtInt = (n) => Number(n ?? 0).toLocaleString('en-US');
function fmtBytes(n) {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0,
    v = Number(n ?? 0);
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}
function fmtDuration(s) {
  const d = Math.floor(s / 86400),
    h = Math.floor(s / 3600) % 24,
    m = Math.floor(s / 60) % 60;
  return [d && `${d}d`, (d || h) && `${h}h`, (d || h || m) && `${m}m`, `${s % 60}s`].filter(Boolean).join(' ');
}
const shortName = (name) => (name.length > 16 ? `${name.slice(0, 6)}…${name.slice(-6)}` : name);

function fillTable(id, rows, cols, empty) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: cols }, empty))]));
}

/** Peers this page has seen, so one that stops and is forgotten still shows, marked gone. */
const seen = new Map();

function peerViews(r) {
  const now = new Date();
  const views = r.peers.map((p) => {
    seen.set(p.name, { nickname: p.nickname, lastSeen: now });
    const status = p.self ? 'self' : p.reachable ? 'reachable' : 'unreachable';
    const direct = r.connections.some((c) => c.name === p.name && c.state === 'established');
    const hop = p.nextHop && p.nextHop !== p.name ? r.peers.find((x) => x.name === p.nextHop) : undefined;
    const text = p.self
      ? 'this router'
      : !p.reachable
        ? 'unreachable'
        : direct
          ? 'connected'
          : `reachable via ${hop?.nickname || 'a peer'}`;
    return { ...p, status, text };
  });
  for (const [name, s] of seen) {
    if (r.peers.some((p) => p.name === name)) continue;
    views.push({
      name,
      nickname: s.nickname,
      status: 'gone',
      text: `gone (stopped or left) since ${s.lastSeen.toLocaleTimeString()}`,
      connections: [],
    });
  }
  return views.sort((a, b) => (a.self ? -1 : b.self ? 1 : (a.nickname || a.name).localeCompare(b.nickname || b.name)));
}

function renderSummary(r) {
  $('router-name').textContent = `${r.nickname} (${shortName(r.name)})`;
  $('router-name').title = r.name;
  document.title = `Weave router ${r.nickname}`;
  const items = [
    ['Name', r.name],
    ['Nickname', r.nickname],
    ['Datapath', r.datapath],
    ['Encryption', r.encryption ? `control: ${r.encryption.controlPlane}; data: ${r.encryption.dataPlane}` : ''],
    ['Uptime', fmtDuration(r.uptimeSeconds)],
    ['Version', r.version],
    ['MTU', r.mtu],
    ['VNI', r.vni],
  ];
  $('summary').replaceChildren(
    ...items.map(([k, v]) => el('div', { 'data-field': k.toLowerCase() }, el('dt', {}, k), el('dd', {}, v))),
  );
}

function renderTopology(r, views) {
  const nick = new Map(views.map((v) => [v.name, v.nickname]));
  const edges = new Map();
  for (const p of r.peers) {
    for (const c of p.connections) {
      if (!nick.has(c.peer)) continue;
      const key = [p.name, c.peer].sort().join(' ');
      const e = edges.get(key) ?? { a: p.name, b: c.peer, established: false };
      e.established ||= c.established;
      edges.set(key, e);
    }
  }
  drawGraph(
    $('graph'),
    views.map((v) => ({ id: v.name, label: v.nickname, sub: shortName(v.name), status: v.status })),
    [...edges.values()],
  );
  const reachable = views.filter((v) => v.status === 'self' || v.status === 'reachable').length;
  $('topology-count').textContent = `${reachable} of ${views.length} peers reachable`;
}

function renderPeers(views) {
  const nick = (name) => {
    const v = views.find((x) => x.name === name);
    return v?.nickname || shortName(name);
  };
  fillTable(
    'peers',
    views.map((v) =>
      el(
        'tr',
        { 'data-peer': v.name, 'data-status': v.status },
        el('td', { class: 'nickname' }, v.nickname || '—'),
        el('td', { class: 'mono', title: v.name }, shortName(v.name)),
        el('td', { class: 'status' }, v.text),
        el('td', {}, v.self || !v.nextHop ? '' : nick(v.nextHop)),
        el(
          'td',
          {},
          ...v.connections.flatMap((c, i) => [
            i ? ', ' : '',
            el(
              'span',
              { class: `state-${c.established ? 'established' : 'pending'}` },
              `${c.outbound ? '→' : '←'} ${nick(c.peer)}${c.established ? '' : ' (pending)'}`,
            ),
          ]),
        ),
      ),
    ),
    5,
    'no peers',
  );
}

function renderConnections(r) {
  fillTable(
    'connections',
    r.connections.map((c) =>
      el(
        'tr',
        { 'data-state': c.state },
        el('td', { title: c.direction }, c.direction === 'outbound' ? '→' : '←'),
        el('td', { class: 'mono' }, c.address),
        el('td', {}, c.nickname || (c.name ? shortName(c.name) : '')),
        el('td', { class: `state-${c.state}` }, c.state),
        el('td', {}, c.info),
        el(
          'td',
          { class: 'num' },
          c.traffic ? `${fmtInt(c.traffic.tx.frames)} frames, ${fmtBytes(c.traffic.tx.bytes)}` : '',
        ),
        el(
          'td',
          { class: 'num' },
          c.traffic ? `${fmtInt(c.traffic.rx.frames)} frames, ${fmtBytes(c.traffic.rx.bytes)}` : '',
        ),
      ),
    ),
    7,
    'no connections',
  );
}

function renderMacs(r) {
  $('mac-count').textContent = `${r.macs.length} entries`;
  fillTable(
    'macs',
    r.macs.map((m) =>
      el(
        'tr',
        {},
        el('td', { class: 'mono' }, m.mac),
        el('td', { title: m.peer }, m.local ? `${m.nickname} (local)` : m.nickname || m.peer),
        el('td', { class: 'num' }, fmtDuration(m.ageSeconds)),
      ),
    ),
    3,
    'no MAC addresses learned yet',
  );
}

/** The CSP forbids style attributes; setting the property through the DOM is allowed. */
function bar(pct) {
  const s = el('span');
  s.style.width = `${pct.toFixed(1)}%`;
  return s;
}

/** report.ipam: its shape is IpamReport in contract/report.ts; absent while IPAM does not run. */
function renderIpam(r) {
  const box = $('ipam');
  const ipam = r.ipam;
  if (!ipam) {
    box.replaceChildren(
      el(
        'p',
        { class: 'notice', 'data-ipam': 'off' },
        'IPAM not running: containers get the addresses given to weave attach.',
      ),
    );
    return;
  }
  const m = /\/(\d+)$/.exec(ipam.range ?? '');
  const size = ipam.total ?? (m ? 2 ** (32 - Number(m[1])) : undefined);
  const facts = [
    ['Status', ipam.status],
    ['Range', ipam.range],
    ['Default subnet', ipam.defaultSubnet],
    ['In use', ipam.inUse === undefined ? undefined : fmtInt(ipam.inUse)],
    ['Free', ipam.free === undefined ? undefined : fmtInt(ipam.free)],
  ];
  const parts = [
    el(
      'dl',
      { class: 'summary', 'data-ipam': 'on' },
      ...facts.filter(([, v]) => v !== undefined).map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v))),
    ),
  ];
  for (const x of ipam.mismatches ?? [])
    parts.push(
      el(
        'p',
        { class: 'state-failed' },
        `${x.nickname || shortName(x.peer)} uses another range (${x.range}): its IPAM is ignored`,
      ),
    );
  if (Array.isArray(ipam.peers)) {
    parts.push(
      ipam.peers.length
        ? el(
            'table',
            {},
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                el('th', {}, 'Peer'),
                el('th', { class: 'num' }, 'Owned'),
                el('th', { class: 'num' }, 'Free'),
                el('th', {}, 'Share'),
              ),
            ),
            el(
              'tbody',
              {},
              ...ipam.peers.map((p) => {
                const pct = p.percent ?? (size ? (100 * p.owned) / size : 0);
                return el(
                  'tr',
                  { 'data-status': p.reachable === false ? 'unreachable' : p.self ? 'self' : 'reachable' },
                  el(
                    'td',
                    { title: p.name },
                    `${p.nickname || shortName(p.name)}${p.reachable === false ? ' (unreachable)' : ''}`,
                  ),
                  el('td', { class: 'num' }, fmtInt(p.owned)),
                  el('td', { class: 'num' }, p.free === undefined ? '' : fmtInt(p.free)),
                  el(
                    'td',
                    {},
                    el('div', { class: 'bar', title: `${pct.toFixed(1)}%` }, bar(pct)),
                    ` ${pct.toFixed(1)}%`,
                  ),
                );
              }),
            ),
          )
        : el('p', { class: 'notice' }, 'the range is not split among peers yet'),
    );
  }
  if (Array.isArray(ipam.allocations)) {
    parts.push(el('h3', {}, 'Allocations on this host'));
    parts.push(
      ipam.allocations.length
        ? el(
            'table',
            {},
            el(
              'tbody',
              {},
              ...ipam.allocations.map((a) =>
                el('tr', {}, el('td', { class: 'mono' }, a.cidr ?? a.address), el('td', {}, a.container ?? '')),
              ),
            ),
          )
        : el('p', { class: 'notice' }, 'none'),
    );
  }
  if (!Array.isArray(ipam.peers) && !Array.isArray(ipam.allocations))
    parts.push(el('pre', {}, JSON.stringify(ipam, null, 2)));
  box.replaceChildren(...parts);
}

function renderTraffic(r) {
  const c = r.counters;
  const rows = [
    ['Frames out (from bridge)', `${fmtInt(c.captured.frames)} · ${fmtBytes(c.captured.bytes)}`],
    ['Frames in (to bridge)', `${fmtInt(c.injected.frames)} · ${fmtBytes(c.injected.bytes)}`],
    ['Datagrams sent', `${fmtInt(c.sent.datagrams)} · ${fmtBytes(c.sent.bytes)}`],
    ['Datagrams received', `${fmtInt(c.received.datagrams)} · ${fmtBytes(c.received.bytes)}`],
    ['Relayed', fmtInt(c.relayed)],
    ['Flooded', fmtInt(c.flooded)],
    ...Object.entries(c.dropped).map(([reason, n]) => [`Dropped: ${reason}`, fmtInt(n)]),
    ['Gossip entries refused', fmtInt(c.gossipRejected ?? 0)],
    ['MACs evicted (table full)', fmtInt(c.macsEvicted ?? 0)],
  ];
  fillTable(
    'traffic',
    rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { class: 'num' }, v))),
    2,
    '',
  );
  fillTable(
    'gossip',
    Object.entries(r.gossip).map(([ch, g]) =>
      el(
        'tr',
        {},
        el('td', {}, ch),
        el('td', { class: 'num' }, `${fmtInt(g.messagesIn)} · ${fmtBytes(g.bytesIn)}`),
        el('td', { class: 'num' }, `${fmtInt(g.messagesOut)} · ${fmtBytes(g.bytesOut)}`),
        el('td', { class: 'num' }, fmtInt(g.dropped)),
      ),
    ),
    4,
    'no gossip channels',
  );
}

/**
 * report.status: every registered subsystem's `weave status` section, so a new subsystem shows here with no page
 * change.
 */
function renderServices(r) {
  $('services').replaceChildren(
    ...(r.status ?? []).map((sec) =>
      el(
        'div',
        { class: 'service', 'data-service': sec.service },
        el('h3', {}, sec.service),
        el('dl', { class: 'summary' }, ...sec.rows.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v)))),
      ),
    ),
  );
}

function render(r) {
  const views = peerViews(r);
  renderSummary(r);
  renderTopology(r, views);
  renderPeers(views);
  renderConnections(r);
  renderMacs(r);
  renderIpam(r);
  renderTraffic(r);
  renderServices(r);
}

function setLive(state, text) {
  const p = $('live');
  p.dataset.state = state;
  p.textContent = text;
}

const events = new EventSource('events');
events.addEventListener('report', (e) => {
  setLive('live', 'live');
  try {
    render(JSON.parse(e.data));
  } catch (err) {
    console.error('cannot render the report', err);
  }
});
events.addEventListener('error', () => setLive('down', 'router not answering: retrying…'));
