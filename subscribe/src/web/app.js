// The live view: one card per camera with its latest frame, its boxes and how old the picture is, fed by
// server-sent events; what happened before the page was opened comes from /api/state (and the store).
'use strict';

const cameras = new Map();
let recent = [];
// The server's clock minus the browser's: ages are measured by the clock that stamped the frames' arrival.
let skew = 0;
const PALETTE = ['#e6194b', '#3cb44b', '#ffe119', '#0082c8', '#f58230', '#911eb4', '#46f0f0', '#f032e6'];

// Same hash as the snapshots (FNV-1a over the label's bytes), so a label has one colour everywhere.
function colour(label) {
  let h = 2166136261;
  for (const b of new TextEncoder().encode(label)) {
    h = Math.imul(h ^ b, 16777619) >>> 0;
  }
  return PALETTE[h % PALETTE.length];
}

function ago(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 2) return 'just now';
  if (s < 120) return s + ' s ago';
  if (s < 7200) return Math.floor(s / 60) + ' min ago';
  if (s < 172800) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' days ago';
}

function addOption(selectId, value) {
  const select = document.getElementById(selectId);
  if ([...select.options].some(o => o.value === value)) return;
  const o = document.createElement('option');
  o.value = o.textContent = value;
  select.appendChild(o);
}

function card(id) {
  let c = cameras.get(id);
  if (c) return c;
  document.getElementById('no-cameras')?.remove();
  const el = document.createElement('article');
  el.className = 'camera';
  el.dataset.camera = id;
  el.innerHTML = '<h3><a></a> <span class="age"></span></h3><div class="view"><img alt=""><div class="boxes"></div></div>' +
    '<p class="counts"></p><p class="meta"></p>';
  const a = el.querySelector('h3 a');
  a.textContent = id;
  a.href = '/cameras/' + encodeURIComponent(id);
  el.querySelector('img').alt = 'latest frame of ' + id;
  const list = document.getElementById('cameras');
  const after = [...list.children].find(x => x.dataset.camera > id);
  list.insertBefore(el, after || null);
  c = { el, shown: -1, loading: false, pending: null };
  cameras.set(id, c);
  addOption('f-camera', id);
  return c;
}

function setAge(c, captureMs) {
  c.el.dataset.captureMs = captureMs;
  c.el.querySelector('.age').textContent = ago(Date.now() + skew - captureMs);
}

function drawBoxes(c, d) {
  const layer = c.el.querySelector('.boxes');
  layer.replaceChildren(...d.boxes.map(b => {
    const e = document.createElement('div');
    e.className = 'box';
    e.dataset.label = b.label;
    const [x1, y1, x2, y2] = b.box;
    e.style.left = (100 * Math.max(0, x1) / d.width) + '%';
    e.style.top = (100 * Math.max(0, y1) / d.height) + '%';
    e.style.width = (100 * (Math.min(d.width, x2) - Math.max(0, x1)) / d.width) + '%';
    e.style.height = (100 * (Math.min(d.height, y2) - Math.max(0, y1)) / d.height) + '%';
    e.style.borderColor = colour(b.label);
    const tag = document.createElement('span');
    tag.textContent = b.label + ' ' + Math.round(b.score * 100) + '%';
    tag.style.backgroundColor = colour(b.label);
    e.appendChild(tag);
    return e;
  }));
  // Objects per label in this frame, most first.
  const counts = new Map();
  for (const b of d.boxes) counts.set(b.label, (counts.get(b.label) || 0) + 1);
  c.el.querySelector('.counts').replaceChildren(...[...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([label, n]) => {
      const s = document.createElement('span');
      s.dataset.label = label;
      s.textContent = label + ' ' + n;
      s.style.borderColor = colour(label);
      return s;
    }));
  c.el.classList.remove('stored');
  c.el.dataset.seq = d.seq;
  setAge(c, d.capture_ms);
  c.el.querySelector('.meta').textContent =
    '#' + d.seq + ' · ' + d.boxes.length + (d.boxes.length === 1 ? ' box · ' : ' boxes · ') + d.latency_ms + ' ms capture to page · ' + d.model;
}

// One frame loads at a time per card; what arrives meanwhile waits, and only the newest of it is drawn next:
// a camera faster than the browser shows fewer frames, never older ones.
function load(c, d) {
  if (c.loading) {
    c.pending = d;
    return;
  }
  c.loading = true;
  const next = new Image();
  const done = () => {
    c.loading = false;
    const p = c.pending;
    c.pending = null;
    if (p) load(c, p);
  };
  next.onload = () => {
    // Boxes change together with their frame, never on the previous one.
    if (c.shown === d.seq) {
      c.el.querySelector('img').src = next.src;
      drawBoxes(c, d);
    }
    done();
  };
  next.onerror = done;
  next.src = d.frame_url;
}

function show(d) {
  const c = card(d.camera);
  if (d.seq <= c.shown) return;
  c.shown = d.seq;
  if (d.frame_url) load(c, d); else drawBoxes(c, d);
}

// A camera the store knows but this server has not seen live: its newest stored snapshot.
function showStored(s) {
  if (cameras.has(s.camera) && cameras.get(s.camera).shown >= 0) return;
  const c = card(s.camera);
  c.el.classList.add('stored');
  if (s.snapshot_url) c.el.querySelector('img').src = s.snapshot_url;
  setAge(c, s.snapshot_ms == null ? s.capture_ms : s.snapshot_ms);
  c.el.querySelector('.meta').textContent = 'not live since the server started · last stored frame ' +
    new Date(s.capture_ms).toLocaleString();
}

function remember(d) {
  for (const b of d.boxes) {
    recent.unshift({ camera: d.camera, seq: d.seq, capture_ms: d.capture_ms, label: b.label, score: b.score });
  }
  recent = recent.slice(0, 300);
}

function renderRecent() {
  const cam = document.getElementById('f-camera').value;
  const label = document.getElementById('f-label').value;
  for (const r of recent) addOption('f-label', r.label);
  const rows = recent.filter(r => (!cam || r.camera === cam) && (!label || r.label === label)).slice(0, 100);
  document.getElementById('recent').replaceChildren(...rows.map(r => {
    const li = document.createElement('li');
    li.dataset.camera = r.camera;
    li.dataset.label = r.label;
    li.textContent = new Date(r.capture_ms).toLocaleTimeString() + '  ' + r.camera + ' #' + r.seq + '  ' +
      r.label + ' ' + Math.round(r.score * 100) + '%';
    return li;
  }));
}

let storedAt = 0;

async function refreshFigures() {
  try {
    const s = await (await fetch('/api/state')).json();
    skew = s.now_ms - Date.now();
    document.getElementById('figures').tBodies[0].replaceChildren(...s.cameras.map(c => {
      const tr = document.createElement('tr');
      tr.dataset.camera = c.camera;
      for (const v of [c.camera, c.fps.toFixed(1), c.latency_ms_p50 == null ? '–' : c.latency_ms_p50 + ' ms', c.frames]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.appendChild(td);
      }
      return tr;
    }));
    for (const c of s.cameras) if (c.latest) show(c.latest);
    // The server's list is complete; the stream may have skipped frames of a camera faster than this page.
    recent = s.recent;
    renderRecent();
    document.getElementById('lag').textContent = s.lag.partitions.length
      ? 'detector lag: ' + s.lag.total + ' frames (' + s.lag.partitions.map(([p, l]) => 'p' + p + ' ' + l).join(', ') + ')'
      : '';
    document.getElementById('review-link').hidden = !s.store;
    document.getElementById('logout').hidden = !s.auth;
    if (s.store) {
      refreshEvents();
      if (Date.now() - storedAt > 30000) {
        storedAt = Date.now();
        const r = await fetch('/api/cameras');
        if (r.ok) for (const c of await r.json()) showStored(c);
      }
    }
  } catch (e) { /* the stream's status says it */ }
}

async function refreshEvents() {
  const cam = document.getElementById('f-camera').value;
  const label = document.getElementById('f-label').value;
  const r = await fetch('/api/events?limit=20&camera=' + encodeURIComponent(cam) + '&label=' + encodeURIComponent(label));
  if (!r.ok) return;
  const events = await r.json();
  document.getElementById('events-panel').hidden = false;
  document.getElementById('events').replaceChildren(...events.map(e => {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = '/events/' + encodeURIComponent(e.id);
    a.textContent = new Date(e.start_ms).toLocaleTimeString() + '  ' + e.camera + '  ' + e.label + '  ' +
      ((e.end_ms - e.start_ms) / 1000).toFixed(1) + ' s' + (e.open ? ' (open)' : '');
    li.appendChild(a);
    return li;
  }));
}

function connect() {
  const conn = document.getElementById('conn');
  const es = new EventSource('/api/stream');
  es.onopen = () => { conn.textContent = 'live'; conn.className = 'conn live'; };
  es.onerror = () => { conn.textContent = 'reconnecting…'; conn.className = 'conn down'; };
  // Each message holds the newest frame of each camera that changed since the last one.
  es.addEventListener('detections', ev => {
    for (const d of JSON.parse(ev.data)) {
      show(d);
      remember(d);
    }
    renderRecent();
  });
}

document.getElementById('f-camera').onchange = () => { renderRecent(); refreshEvents(); };
document.getElementById('f-label').onchange = () => { renderRecent(); refreshEvents(); };
connect();
refreshFigures();
setInterval(refreshFigures, 2000);
setInterval(() => { for (const c of cameras.values()) if (c.el.dataset.captureMs) setAge(c, +c.el.dataset.captureMs); }, 1000);
