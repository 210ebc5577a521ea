// The live view: one card per camera with its latest frame and boxes, fed by server-sent events.
'use strict';

const cameras = new Map();
let recent = [];
const PALETTE = ['#e6194b', '#3cb44b', '#ffe119', '#0082c8', '#f58230', '#911eb4', '#46f0f0', '#f032e6'];

// Same hash as the snapshots (FNV-1a over the label's bytes), so a label has one colour everywhere.
function colour(label) {
  let h = 2166136261;
  for (const b of new TextEncoder().encode(label)) {
    h = Math.imul(h ^ b, 16777619) >>> 0;
  }
  return PALETTE[h % PALETTE.length];
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
  el.innerHTML = '<h3></h3><div class="view"><img alt=""><div class="boxes"></div></div><p class="meta"></p>';
  el.querySelector('h3').textContent = id;
  el.querySelector('img').alt = 'latest frame of ' + id;
  const list = document.getElementById('cameras');
  const after = [...list.children].find(x => x.dataset.camera > id);
  list.insertBefore(el, after || null);
  c = { el, shown: -1 };
  cameras.set(id, c);
  addOption('f-camera', id);
  return c;
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
  c.el.dataset.seq = d.seq;
  c.el.querySelector('.meta').textContent =
    '#' + d.seq + ' · ' + d.boxes.length + (d.boxes.length === 1 ? ' box · ' : ' boxes · ') + d.latency_ms + ' ms after capture · ' + d.model;
}

function show(d) {
  const c = card(d.camera);
  if (d.seq <= c.shown) return;
  c.shown = d.seq;
  if (!d.frame_url) {
    drawBoxes(c, d);
    return;
  }
  // Boxes change together with their frame, never on the previous one.
  const next = new Image();
  next.onload = () => {
    if (c.shown !== d.seq) return;
    c.el.querySelector('img').src = next.src;
    drawBoxes(c, d);
  };
  next.src = d.frame_url;
}

function remember(d) {
  for (const b of d.boxes) {
    recent.unshift({ camera: d.camera, seq: d.seq, capture_ms: d.capture_ms, label: b.label, score: b.score });
    addOption('f-label', b.label);
  }
  recent = recent.slice(0, 300);
}

function renderRecent() {
  const cam = document.getElementById('f-camera').value;
  const label = document.getElementById('f-label').value;
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

async function refreshFigures() {
  try {
    const s = await (await fetch('/api/state')).json();
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
    document.getElementById('lag').textContent = s.lag.partitions.length
      ? 'detector lag: ' + s.lag.total + ' frames (' + s.lag.partitions.map(([p, l]) => 'p' + p + ' ' + l).join(', ') + ')'
      : '';
    if (s.store) refreshEvents();
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
  es.addEventListener('detections', ev => {
    const d = JSON.parse(ev.data);
    show(d);
    remember(d);
    renderRecent();
  });
}

document.getElementById('f-camera').onchange = () => { renderRecent(); refreshEvents(); };
document.getElementById('f-label').onchange = () => { renderRecent(); refreshEvents(); };
connect();
refreshFigures();
setInterval(refreshFigures, 2000);
