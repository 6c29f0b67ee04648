// Strata web console: plain browser JavaScript, no framework and no build step. It reads the gateway's public
// API only; every failure is shown in the panel it belongs to and in the "Problems" list, never only in the
// browser's console. Content-Security-Policy forbids inline code and styles, so widths are set through CSSOM.
'use strict';

const REFRESH_MS = { cluster: 3000, healer: 3000, usage: 10000, rate: 2000 };
const LIST_PAGE_KEYS = 25;
const FEED_ITEMS_MAX = 30;
const FEED_RECONNECT_MS = 2000;
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  apiKey: sessionStorage.getItem('strata-api-key') || '',
  zonesByNode: new Map(),
  list: { prefix: '', cursor: null, shown: 0 },
  selectedKey: null,
  commitTimes: [],
  lastEventId: null,
  problems: new Map(),
};

// ---- talking to the gateway ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(path, status, code, message) {
    super(`${path}: ${status === 0 ? '' : `${status} `}${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

function headers() {
  return state.apiKey ? { 'X-Api-Key': state.apiKey } : {};
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers(), cache: 'no-store' });
  } catch (error) {
    throw new ApiError(path, 0, 'UNREACHABLE', `the gateway could not be reached (${error.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : { code: `HTTP_${response.status}`, message: text.slice(0, 200) };
    throw new ApiError(path, response.status, error.code, error.message);
  }
  if (body === null) throw new ApiError(path, response.status, 'BAD_RESPONSE', 'the answer is not JSON');
  return body;
}

// ---- problems: per panel and in the list at the top --------------------------------------------------------------

function setProblem(source, panelId, error) {
  if (error === null) state.problems.delete(source);
  else state.problems.set(source, { panelId, message: error instanceof Error ? error.message : String(error) });
  // A panel shows the problems of every source that feeds it.
  const panelError = document.querySelector(`#${panelId} .panel-error`);
  const mine = [...state.problems.values()].filter((p) => p.panelId === panelId).map((p) => p.message);
  if (panelError) {
    panelError.textContent = mine.join(' · ');
    panelError.hidden = mine.length === 0;
  }
  const list = document.getElementById('error-list');
  list.replaceChildren(...[...state.problems].map(([what, p]) => el('li', { className: 'error-item' }, `${what}: ${p.message}`)));
  document.getElementById('errors').hidden = state.problems.size === 0;
}

/** Runs `work` now and every `everyMs`, reporting its failure as a problem of `source` until it succeeds again. */
function poll(source, panelId, everyMs, work) {
  const run = async () => {
    try {
      await work();
      setProblem(source, panelId, null);
    } catch (error) {
      setProblem(source, panelId, error);
    }
  };
  run();
  setInterval(run, everyMs);
}

// ---- small DOM helpers -------------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'dataset') Object.assign(node.dataset, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function badge(text, kind) {
  return el('span', { className: `badge badge-${kind || text}` }, text);
}

function formatBytes(n) {
  if (n === null || n === undefined) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

// ---- cluster map -------------------------------------------------------------------------------------------------

async function refreshCluster() {
  const [cluster, probes] = await Promise.all([api('/cluster'), api('/node_status')]);
  document.getElementById('backends').textContent = `metadata: ${cluster.metadata_backend} · log: ${cluster.wal_backend}`;
  document.getElementById('healer-leader').textContent = cluster.healer_leader || 'none';
  const nodes = cluster.nodes;
  const healthy = nodes.filter((n) => (probes[n.address] || n.state) === 'healthy').length;
  document.getElementById('node-count').textContent = `${nodes.length} nodes, ${healthy} healthy`;
  const fullest = Math.max(1, ...nodes.map((n) => n.bytes_used || 0));
  const zones = new Map();
  state.zonesByNode.clear();
  for (const node of nodes) {
    const zone = node.zone || 'no zone';
    state.zonesByNode.set(node.id, zone);
    if (!zones.has(zone)) zones.set(zone, []);
    zones.get(zone).push(node);
  }
  const columns = [...zones].sort(([a], [b]) => a.localeCompare(b)).map(([zone, members]) => {
    const cards = members.map((node) => {
      const health = probes[node.address] || node.state;
      const fill = el('div', { className: 'usage-fill' });
      fill.style.width = `${Math.round(((node.bytes_used || 0) / fullest) * 100)}%`;
      const card = el(
        'div',
        { className: `node-card${health === 'healthy' ? '' : ' down'}`, dataset: { nodeId: node.id, state: health } },
        el('div', { className: 'row' }, el('strong', {}, node.id), badge(health)),
        el('div', { className: 'addr' }, node.address),
        el('div', { className: 'usage', title: 'bytes used, relative to the fullest node' }, fill),
        el('div', { className: 'row muted' }, el('span', {}, `${formatBytes(node.bytes_used)} used`), el('span', {}, `${node.blobs ?? '?'} blobs`)),
      );
      if (node.draining) card.querySelector('.row').append(badge('draining'));
      if (node.last_error && health !== 'healthy') card.append(el('div', { className: 'addr' }, node.last_error));
      return card;
    });
    return el('div', { className: 'zone', dataset: { zone } }, el('h3', {}, zone), el('div', { className: 'zone-nodes' }, ...cards));
  });
  document.getElementById('zones').replaceChildren(...columns);
}

// ---- object browser and document view ------------------------------------------------------------------------------

async function listPage(reset) {
  if (reset) {
    state.list.prefix = document.getElementById('prefix').value;
    state.list.cursor = null;
    state.list.shown = 0;
  }
  const query = new URLSearchParams({ prefix: state.list.prefix, limit: String(LIST_PAGE_KEYS) });
  if (state.list.cursor) query.set('cursor', state.list.cursor);
  try {
    const page = await api(`/list?${query}`);
    const rows = page.keys.map((key) => {
      const button = el('button', { type: 'button', className: 'key-row', dataset: { key } }, key);
      button.addEventListener('click', () => openDocument(key));
      return el('li', {}, button);
    });
    document.getElementById('keys').replaceChildren(...rows);
    const first = state.list.shown + 1;
    state.list.shown += page.keys.length;
    document.getElementById('page-info').textContent =
      page.keys.length === 0 ? 'no keys' : `keys ${first}-${state.list.shown}${page.next_cursor ? '' : ' (last page)'}`;
    state.list.cursor = page.next_cursor;
    document.getElementById('next-page').hidden = !page.next_cursor;
    setProblem('object browser', 'browser-panel', null);
  } catch (error) {
    setProblem('object browser', 'browser-panel', error);
  }
}

async function openDocument(key) {
  state.selectedKey = key;
  for (const row of document.querySelectorAll('.key-row')) row.classList.toggle('selected', row.dataset.key === key);
  try {
    const stat = await api(`/stat/${encodeURIComponent(key)}?verify=true`);
    if (state.selectedKey !== key) return;
    renderDocument(stat);
    setProblem('document', 'doc-panel', null);
  } catch (error) {
    setProblem('document', 'doc-panel', error);
  }
}

function renderDocument(stat) {
  document.getElementById('doc-empty').hidden = true;
  document.getElementById('doc-detail').hidden = false;
  document.getElementById('doc-key').textContent = stat.key;
  document.getElementById('doc-version').textContent = stat.version;
  document.getElementById('doc-strategy').textContent = stat.strategy;
  document.getElementById('doc-hot-fields').textContent = stat.hot_fields.length > 0 ? stat.hot_fields.join(', ') : '(none)';
  const protection = stat.protection;
  document.getElementById('doc-protection').replaceChildren(
    protection
      ? badge(protection.full ? 'full' : protection.readable ? 'degraded' : 'unreadable', protection.full ? 'ok' : protection.readable ? 'warn' : 'bad')
      : badge('not verified', 'unknown'),
  );
  const hotBytes = stat.bytes.hot;
  const coldBytes = stat.bytes.cold;
  const total = Math.max(1, hotBytes + coldBytes);
  const hotShare = hotBytes / total;
  document.getElementById('split-hot').style.width = `${hotBytes > 0 ? Math.max(1, hotShare * 100) : 0}%`;
  document.getElementById('split-cold').style.width = `${coldBytes > 0 ? Math.max(1, (1 - hotShare) * 100) : 0}%`;
  document.getElementById('split-hot-label').textContent = `hot ${formatBytes(hotBytes)} in ${stat.hot.length} replicas`;
  document.getElementById('split-cold-label').textContent =
    `cold ${formatBytes(coldBytes)} in ${stat.cold.length === 6 ? '6 shards (Reed-Solomon 4+2)' : `${stat.cold.length} copies`}`;
  const rows = [
    ...stat.hot.map((r) => ({ part: r.part, tier: 'hot', ...r })),
    // /stat names hot parts only; a cold part is one of six Reed-Solomon shards or one of three whole copies, and
    // the manifest names them shard-i and cold-i accordingly.
    ...stat.cold.map((r) => ({ part: `${stat.cold.length === 6 ? 'shard' : 'cold'}-${r.index}`, tier: 'cold', ...r })),
  ].map((r) =>
    el(
      'tr',
      { className: `placement-row tier-${r.tier}`, dataset: { part: r.part, node: r.node } },
      el('td', {}, r.part),
      el('td', {}, r.node),
      el('td', {}, state.zonesByNode.get(r.node) || '?'),
      el('td', {}, formatBytes(r.size)),
      el('td', {}, badge(r.state)),
    ),
  );
  document.querySelector('#placement tbody').replaceChildren(...rows);
}

// ---- storage efficiency ------------------------------------------------------------------------------------------

async function refreshUsage() {
  const usage = await api('/storage_usage');
  const onDisk = Object.values(usage.per_node).reduce((sum, n) => sum + (n.stored_bytes || 0), 0);
  const bars = [
    { series: 'logical', label: 'your documents', value: usage.logical_bytes },
    { series: 'stored', label: 'Strata on disk', value: onDisk },
    { series: 'replication', label: '3x replication', value: usage.logical_bytes * 3 },
  ];
  const chart = document.getElementById('efficiency-chart');
  const max = Math.max(1, ...bars.map((b) => b.value));
  const left = 110;
  const width = 250;
  const children = bars.flatMap((bar, i) => {
    const y = 14 + i * 48;
    const w = Math.max(bar.value > 0 ? 2 : 0, (bar.value / max) * width);
    return [
      svg('text', { x: 0, y: y + 17 }, bar.label),
      svg('rect', { x: left, y, width: w, height: 26, rx: 3, class: `bar bar-${bar.series}`, 'data-series': bar.series, 'data-bytes': bar.value }),
      svg('text', { x: left + w + 6, y: y + 17 }, formatBytes(bar.value)),
    ];
  });
  chart.replaceChildren(svg('line', { x1: left, y1: 6, x2: left, y2: 158, class: 'axis' }), ...children);
  const saved = usage.logical_bytes * 3 - onDisk;
  document.getElementById('efficiency-summary').textContent =
    usage.logical_bytes > 0
      ? `${(onDisk / usage.logical_bytes).toFixed(2)}x of the logical size on disk (referenced ${usage.amplification}x); ${saved >= 0 ? `${formatBytes(saved)} less` : `${formatBytes(-saved)} more`} than 3x replication; ${usage.live_keys} keys`
      : 'no documents yet';
  document.getElementById('efficiency-reclaim').textContent =
    `reclaimable now: ${formatBytes(usage.reclaimable_bytes)} · reclaimed by compaction so far: ${formatBytes(usage.reclaimed_bytes)}`;
}

// ---- healer ------------------------------------------------------------------------------------------------------

async function refreshHealer() {
  const healer = await api('/healer');
  document.getElementById('repair-backlog').textContent =
    `leader: ${healer.leader || 'none'}${healer.repair_backlog === null ? '' : ` · below full protection: ${healer.repair_backlog}`}`;
  const rows = healer.recent.map((a) =>
    el(
      'tr',
      { className: 'repair-row', dataset: { key: a.key, kind: a.kind } },
      el('td', {}, formatTime(a.at)),
      el('td', {}, badge(a.kind, a.kind === 'repaired' ? 'ok' : 'bad')),
      el('td', {}, a.key),
      el('td', { className: 'detail' }, a.detail),
    ),
  );
  document.querySelector('#repairs tbody').replaceChildren(...rows);
  document.getElementById('repairs-empty').hidden = rows.length > 0;
}

// ---- live activity: request rate and the change feed ---------------------------------------------------------------

async function refreshRate() {
  const stats = await api('/request_stats');
  const series = stats.per_second.slice(0, -1); // the last second is still counting
  const recent = series.slice(-5);
  const rate = recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length);
  document.getElementById('rate-now').textContent = `${rate.toFixed(1)} requests/s · ${stats.total} since ${formatTime(stats.since)}`;
  const chart = document.getElementById('rate-chart');
  const max = Math.max(1, ...series);
  const step = 400 / Math.max(1, series.length - 1);
  const points = series.map((v, i) => `${(10 + i * step).toFixed(1)},${(80 - (v / max) * 66).toFixed(1)}`);
  chart.replaceChildren(
    svg('line', { x1: 10, y1: 80, x2: 410, y2: 80, class: 'axis' }),
    svg('polygon', { points: `10,80 ${points.join(' ')} 410,80`, class: 'rate-area' }),
    svg('polyline', { points: points.join(' '), class: 'rate-line' }),
    svg('text', { x: 10, y: 11 }, `peak ${max}/s over the last minute`),
  );
  showCommitRate();
}

function setFeedStatus(text, kind) {
  const live = document.getElementById('live');
  live.textContent = `feed: ${text}`;
  live.className = `badge badge-${kind}`;
}

function showCommitRate() {
  const now = Date.now();
  state.commitTimes = state.commitTimes.filter((t) => now - t < 10000);
  document.getElementById('commit-rate').textContent = `${(state.commitTimes.length / 10).toFixed(1)} commits/s over 10 s`;
}

function showChange(change) {
  state.commitTimes.push(Date.now());
  showCommitRate();
  const item = el(
    'li',
    { className: `kind-${change.kind}`, dataset: { version: change.version } },
    `v${change.version} ${change.kind} ${change.key}`,
  );
  const feed = document.getElementById('feed');
  feed.prepend(item);
  while (feed.children.length > FEED_ITEMS_MAX) feed.lastChild.remove();
}

/**
 * Follows GET /watch with fetch() rather than EventSource, so that the API key header can be sent. After a break it
 * resumes from the last event id (no gaps, no repeats); after HISTORY_COMPACTED it starts from now.
 */
async function followFeed() {
  for (;;) {
    try {
      const h = headers();
      if (state.lastEventId !== null) h['Last-Event-ID'] = state.lastEventId;
      const response = await fetch('/watch', { headers: h, cache: 'no-store' });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        const error = body && body.error ? body.error : { code: `HTTP_${response.status}`, message: '' };
        if (error.code === 'HISTORY_COMPACTED') state.lastEventId = null;
        throw new ApiError('/watch', response.status, error.code, error.message);
      }
      setFeedStatus('live', 'ok');
      setProblem('change feed', 'activity-panel', null);
      await readEvents(response.body);
      setFeedStatus('reconnecting', 'warn');
    } catch (error) {
      setFeedStatus('down', 'bad');
      setProblem('change feed', 'activity-panel', error);
    }
    await new Promise((resolve) => setTimeout(resolve, FEED_RECONNECT_MS));
  }
}

async function readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      handleEvent(block);
    }
  }
}

function handleEvent(block) {
  let event = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  if (id !== null) state.lastEventId = id;
  if (data.length === 0) return;
  const payload = JSON.parse(data.join('\n'));
  if (event === 'change') showChange(payload);
  if (event === 'error') {
    if (payload.error.code === 'HISTORY_COMPACTED') state.lastEventId = null;
    setProblem('change feed', 'activity-panel', new ApiError('/watch', 200, payload.error.code, payload.error.message));
  }
}

// ---- start -------------------------------------------------------------------------------------------------------

function start() {
  const keyInput = document.getElementById('api-key');
  keyInput.value = state.apiKey;
  keyInput.addEventListener('change', () => {
    state.apiKey = keyInput.value.trim();
    sessionStorage.setItem('strata-api-key', state.apiKey);
    listPage(true);
  });
  document.getElementById('browse-form').addEventListener('submit', (event) => {
    event.preventDefault();
    listPage(true);
  });
  document.getElementById('next-page').addEventListener('click', () => listPage(false));

  poll('cluster map', 'cluster-panel', REFRESH_MS.cluster, refreshCluster);
  poll('storage efficiency', 'efficiency-panel', REFRESH_MS.usage, refreshUsage);
  poll('healer', 'healer-panel', REFRESH_MS.healer, refreshHealer);
  poll('request rate', 'activity-panel', REFRESH_MS.rate, refreshRate);
  listPage(true);
  followFeed();
}

document.addEventListener('DOMContentLoaded', start);
