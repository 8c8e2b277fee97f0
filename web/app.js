// The tidemark dashboard: polls the job manager's REST API (docs/rest-api.md) every second and
// draws the job graph, watermarks, late data, checkpoints, exceptions and a live tail.
// Plain browser JavaScript, no build step; dagre and uPlot are globals from /vendor/.

const POLL_MS = 1000;
const MAX_WATERMARK = Number.MAX_SAFE_INTEGER;
const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED']);
const TABS = ['graph', 'watermarks', 'late', 'checkpoints', 'exceptions', 'tail'];

const state = {
  jobId: null,
  job: null, // JobDetails
  plan: null, // PlanJson
  planKey: '',
  layout: null,
  vertices: new Map(), // vid -> VertexDetails
  watermarks: new Map(), // vid -> VertexWatermarks
  checkpoints: null,
  cpSelected: null, // checkpoint id picked by the user (null: the latest)
  cpDetails: null,
  exceptions: null,
  lateLog: new Map(), // operator id -> [{ at, subtask, delta, watermark }], newest first
  failingSince: null,
  lastOk: 0,
  charts: {},
};

// ---------- small helpers ----------

const $ = (id) => document.getElementById(id);

/** An element: h('div', { class: 'x', 'data-testid': 't' }, child, 'text', ...). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  e.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}
const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs);
  e.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}
function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
}

async function api(path) {
  const res = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(4000) });
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = (await res.json()).errors.join('; ');
    } catch {}
    throw Object.assign(new Error(`${path}: ${msg}`), { status: res.status });
  }
  return res.json();
}
const jobPath = (rest = '') => `/jobs/${encodeURIComponent(state.jobId)}${rest}`;

function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
function fmtBytes(b) {
  if (b === null || b === undefined) return '–';
  if (b < 1024) return `${b} B`;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} m`;
}
function fmtTime(ts) {
  if (ts === null || ts === undefined) return '–';
  const d = new Date(ts);
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
function fmtClock(ts) {
  return ts === null || ts === undefined ? '–' : new Date(ts).toLocaleTimeString();
}
/** A watermark as a time of day (with the date when it is not today's). */
function fmtWatermark(wm) {
  if (wm === null || wm === undefined) return 'No Watermark';
  if (wm >= MAX_WATERMARK) return 'end of input';
  const t = fmtTime(wm);
  return t.slice(0, 10) === fmtTime(Date.now()).slice(0, 10) ? t.slice(11) : t;
}
/** How far a watermark is behind wall time `now`. */
function fmtLag(wm, now) {
  if (wm === null || wm === undefined) return '–';
  if (wm >= MAX_WATERMARK) return '–';
  return fmtMs(Math.max(0, now - wm));
}
const fmtRate = (n) => fmtNum(n >= 100 ? Math.round(n) : Math.round(n * 10) / 10);
const pct = (msPerSecond) => `${Math.round((msPerSecond ?? 0) / 10)}%`;

// ---------- polling ----------

async function tick() {
  try {
    await poll();
    state.failingSince = null;
    state.lastOk = Date.now();
  } catch (e) {
    if (e.status === 404 && state.jobId !== null) state.jobId = null; // a new run: pick again
    state.failingSince ??= Date.now();
    console.warn(e);
  }
  renderConnection();
  try {
    render();
  } catch (e) {
    console.error(e);
  }
  setTimeout(tick, POLL_MS);
}

async function poll() {
  if (state.jobId === null) {
    const { jobs } = await api('/jobs');
    const wanted = new URLSearchParams(location.search).get('job');
    const job =
      jobs.find((j) => j.id === wanted) ?? jobs.find((j) => !TERMINAL.has(j.state)) ?? jobs[0] ?? null;
    if (job === null) {
      renderHeader();
      return;
    }
    state.jobId = job.id;
  }
  const job = await api(jobPath());
  const planKey = `${job.id}/${job.attempt}/${job.vertices.length}`;
  if (state.plan === null || state.planKey !== planKey) {
    state.plan = (await api(jobPath('/plan'))).plan;
    state.planKey = planKey;
    state.layout = null;
    fillTailVertices();
  }
  state.job = job;
  renderHeader();
  const tab = currentTab();
  const vids = job.vertices.map((v) => v.id);
  // Always: the graph's bars and the log of late arrivals need every sample.
  await loadVertexDetails(vids);
  if (tab === 'watermarks') await loadWatermarks(vids);
  if (tab === 'checkpoints') await loadCheckpoints();
  if (tab === 'exceptions' || (job.numExceptions > 0 && state.exceptions === null)) await loadExceptions();
}

async function loadVertexDetails(vids) {
  const all = await Promise.all(vids.map((vid) => api(jobPath(`/vertices/${vid}`))));
  for (const d of all) {
    logLateArrivals(state.vertices.get(d.id), d);
    state.vertices.set(d.id, d);
  }
}

/** Per window operator, when late records arrived (to a sample) and the watermark then. */
function logLateArrivals(prev, d) {
  if (prev === undefined) return;
  const late = (st, opId) => {
    const m = st?.operators.find((o) => o.id === opId)?.metrics ?? {};
    return (m.numLateRecordsDropped ?? 0) + (m.numLateRecordsToSideOutput ?? 0);
  };
  for (const op of d.operators)
    for (const st of d.subtasks) {
      const before = prev.subtasks.find((p) => p.subtaskIndex === st.subtaskIndex);
      const delta = late(st, op.id) - late(before, op.id);
      if (before === undefined || delta <= 0) continue;
      const log = state.lateLog.get(op.id) ?? [];
      log.unshift({
        at: st.sampledAt,
        subtask: st.subtaskIndex,
        delta,
        watermark: st.metrics.currentInputWatermark,
      });
      state.lateLog.set(op.id, log.slice(0, 8));
    }
}
async function loadWatermarks(vids) {
  const all = await Promise.all(vids.map((vid) => api(jobPath(`/vertices/${vid}/watermarks`))));
  for (const w of all) state.watermarks.set(w.vertexId, w);
}
async function loadCheckpoints() {
  const cps = await api(jobPath('/checkpoints'));
  state.checkpoints = cps;
  const id = state.cpSelected ?? cps.latest.completed?.id ?? cps.history[0]?.id ?? null;
  const cur = state.cpDetails;
  // A checkpoint's details change only until it ends.
  if (id !== null && (cur === null || cur.id !== id || cur.status === 'IN_PROGRESS'))
    state.cpDetails = await api(jobPath(`/checkpoints/details/${id}`));
  if (id === null) state.cpDetails = null;
}
async function loadExceptions() {
  state.exceptions = await api(jobPath('/exceptions'));
}

function currentTab() {
  const t = location.hash.slice(1);
  return TABS.includes(t) ? t : 'graph';
}

// ---------- header, banner, tabs ----------

function renderHeader() {
  const job = state.job;
  if (job === null) {
    $('job-name').textContent = 'no job yet';
    return;
  }
  $('job-name').textContent = job.name;
  const st = $('job-state');
  st.textContent = job.state;
  st.className = `state ${job.state.toLowerCase()}`;
  const running = job.tasks.RUNNING ?? 0;
  const total = Object.values(job.tasks).reduce((a, b) => a + b, 0);
  $('job-facts').textContent =
    `${fmtMs(job.durationMs)} · ${running}/${total} subtasks running · ${job.mode}` +
    ` · restarts ${job.numRestarts} · checkpoints ${job.checkpointCounts.numberOfCompletedCheckpoints}`;
  $('exc-count').textContent = job.numExceptions > 0 ? `(${job.numExceptions})` : '';
}

function renderConnection() {
  const conn = $('conn');
  const banner = $('banner');
  const ended = state.job !== null && TERMINAL.has(state.job.state);
  document.body.classList.toggle('stale', state.failingSince !== null);
  if (state.failingSince === null) {
    conn.textContent = `updated ${fmtClock(state.lastOk)}`;
    conn.className = 'conn ok';
    banner.hidden = !ended;
    if (ended)
      setBanner(
        `The job ${state.job.state.toLowerCase()} at ${fmtClock(state.job.endTimestamp)}: figures are final.`,
        'info',
      );
    return;
  }
  conn.textContent = `no answer since ${fmtClock(state.failingSince)}`;
  conn.className = 'conn down';
  banner.hidden = false;
  setBanner(
    ended
      ? `The job ${state.job.state.toLowerCase()} and its server has stopped: these are its last figures.`
      : `The server does not answer (since ${fmtClock(state.failingSince)}): retrying every second; figures shown are the last ones.`,
    ended ? 'info' : 'warn',
  );
}
function setBanner(text, kind) {
  const b = $('banner');
  b.textContent = text;
  b.className = kind;
}

function showTab() {
  const tab = currentTab();
  for (const t of TABS) {
    $(t).hidden = t !== tab;
    document.querySelector(`nav a[data-tab="${t}"]`).classList.toggle('active', t === tab);
  }
}

function render() {
  if (state.job === null) return;
  const tab = currentTab();
  if (tab === 'graph') renderGraph();
  else if (tab === 'watermarks') renderWatermarks();
  else if (tab === 'late') renderLate();
  else if (tab === 'checkpoints') renderCheckpoints();
  else if (tab === 'exceptions') renderExceptions();
}

// ---------- the job graph ----------

const NODE_W = 250;
const NODE_H = 112;

function layoutGraph(plan) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 90, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const v of plan.vertices) g.setNode(String(v.id), { width: NODE_W, height: NODE_H });
  for (const v of plan.vertices)
    for (const e of v.inputs) {
      const label = e.sideOutput ? `${e.partitioning} · ${e.sideOutput}` : e.partitioning;
      g.setEdge(String(e.fromVertex), String(v.id), { label, width: label.length * 6.5, height: 14 }, label);
    }
  dagre.layout(g);
  return g;
}

/** Flink's colours: backpressured → dark, busy → red, idle → blue; the highest over subtasks. */
function vertexColour(m) {
  const busy = m.busyTimeMsPerSecond / 1000;
  const bp = m.backPressuredTimeMsPerSecond / 1000;
  if (bp > 0.1 && bp >= busy) return { fill: `hsl(220, 10%, ${Math.round(40 - bp * 30)}%)`, dark: true };
  if (busy > 0.1)
    return {
      fill: `hsl(0, ${Math.round(60 + busy * 40)}%, ${Math.round(92 - busy * 42)}%)`,
      dark: busy > 0.8,
    };
  return { fill: 'hsl(210, 75%, 88%)', dark: false };
}

function renderGraph() {
  const plan = state.plan;
  if (plan === null) return;
  state.layout ??= layoutGraph(plan);
  const g = state.layout;
  const byId = new Map(state.job.vertices.map((v) => [v.id, v]));
  const gw = g.graph().width;
  const gh = g.graph().height;
  const root = s('svg', {
    width: gw,
    height: gh,
    viewBox: `0 0 ${gw} ${gh}`,
    'data-testid': 'job-graph',
  });
  root.append(
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto',
        },
        s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#667' }),
      ),
    ),
  );
  for (const e of g.edges()) {
    const ed = g.edge(e);
    const d = ed.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ');
    root.append(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
    if (ed.label) root.append(s('text', { x: ed.x, y: ed.y + 4, class: 'edge-label' }, ed.label));
  }
  for (const pv of plan.vertices) {
    const n = g.node(String(pv.id));
    const v = byId.get(pv.id);
    if (v === undefined) continue;
    root.append(vertexNode(pv, v, n.x - NODE_W / 2, n.y - NODE_H / 2));
  }
  $('graph-svg').replaceChildren(root);
}

function vertexNode(pv, v, x, y) {
  const m = v.metrics;
  const colour = vertexColour(m);
  const isSource = pv.operators.some((o) => o.source);
  const isSink = pv.operators.every((o) => o.sink);
  const details = state.vertices.get(v.id);
  const perSubtask = (details?.subtasks ?? []).map((st) =>
    isSource ? st.metrics.numRecordsOut : st.metrics.numRecordsIn,
  );
  const max = Math.max(1, ...perSubtask);
  const barW = Math.min(24, (NODE_W - 20) / Math.max(1, perSubtask.length) - 2);
  const bars = perSubtask.map((n, i) => {
    const bh = Math.max(1, Math.round((n / max) * 22));
    return s(
      'rect',
      {
        x: 10 + i * (barW + 2),
        y: NODE_H - 8 - bh,
        width: barW,
        height: bh,
        class: 'bar',
        'data-testid': `subtask-bar-${v.id}-${i}`,
        'data-records': n,
      },
      s('title', {}, `subtask ${i + 1}/${pv.parallelism}: ${n} records ${isSource ? 'out' : 'in'}`),
    );
  });
  const rate = isSource ? m.numRecordsOutPerSecond : m.numRecordsInPerSecond;
  const name = v.name.length > 27 ? v.name.slice(0, 26) + '…' : v.name;
  return s(
    'g',
    {
      transform: `translate(${x},${y})`,
      class: `vertex${colour.dark ? ' dark' : ''}`,
      'data-testid': `vertex-${v.id}`,
      'data-rate': rate,
      'data-busy': m.busyTimeMsPerSecond,
      'data-backpressured': m.backPressuredTimeMsPerSecond,
    },
    s('title', {}, `${v.name}\n${pv.operators.map((o) => `${o.name} (${o.kind})`).join(' → ')}`),
    s('rect', { width: NODE_W, height: NODE_H, rx: 6, fill: colour.fill, class: 'box' }),
    s('text', { x: 10, y: 18, class: 'vname' }, name),
    s('text', { x: NODE_W - 10, y: 18, class: 'vpar', 'text-anchor': 'end' }, `×${pv.parallelism}`),
    s(
      'text',
      { x: 10, y: 38, 'data-testid': `vertex-rate-${v.id}` },
      isSource
        ? `${fmtRate(m.numRecordsOutPerSecond)} records/s out`
        : isSink
          ? `${fmtRate(m.numRecordsInPerSecond)} records/s in`
          : `${fmtRate(m.numRecordsInPerSecond)}/s in · ${fmtRate(m.numRecordsOutPerSecond)}/s out`,
    ),
    s(
      'text',
      { x: 10, y: 56 },
      `busy ${pct(m.busyTimeMsPerSecond)} · backpressured ${pct(m.backPressuredTimeMsPerSecond)}`,
    ),
    v.watermarkStall
      ? s(
          'text',
          { x: 10, y: 74, class: 'vstall', 'data-testid': `vertex-stall-${v.id}` },
          `⚠ watermark stalled ${fmtMs(v.watermarkStall.stalledForMs)}`,
          s('title', {}, v.watermarkStall.message),
        )
      : s('text', { x: 10, y: 74, class: 'wm' }, `wm ${fmtWatermarkShort(m.currentOutputWatermark)}`),
    bars,
  );
}
function fmtWatermarkShort(wm) {
  if (wm === null || wm === undefined) return 'none';
  if (wm >= MAX_WATERMARK) return 'end';
  return new Date(wm).toISOString().slice(11, 23);
}

// ---------- watermarks ----------

const isSourceVertex = (vid) =>
  state.plan?.vertices.find((v) => v.id === vid)?.operators.some((o) => o.source) ?? false;

/** Why an input holds the minimum, in words. */
function inputWhy(inp, inputs) {
  if (inp.watermark === null) return 'never sent a watermark';
  if (inp.idle) return 'marked idle';
  if (inp.lastRecordAgeMs === null) return 'no record yet (watermarks only)';
  if (inp.lastRecordAgeMs > 2000)
    return `idle: no record for ${fmtMs(inp.lastRecordAgeMs)} (not marked idle)`;
  const others = inputs.filter((i) => i !== inp && !i.idle && i.watermark !== null).map((i) => i.watermark);
  if (others.length === 0) return 'its only input';
  const behind = Math.min(...others) - inp.watermark;
  return behind > 1000 ? `slow: ${fmtMs(behind)} behind the others` : 'the lowest, by little (normal)';
}

function renderWatermarks() {
  const now = state.job.now;
  const out = [];
  for (const v of state.job.vertices) {
    const w = state.watermarks.get(v.id);
    if (w === undefined) continue;
    out.push(
      h(
        'div',
        { class: 'card', 'data-testid': `wm-vertex-${v.id}` },
        h(
          'h3',
          {},
          v.name,
          ' ',
          h(
            'span',
            { class: 'dim' },
            `${isSourceVertex(v.id) ? '' : `in ${fmtWatermark(w.currentInputWatermark)} · `}` +
              `out ${fmtWatermark(w.currentOutputWatermark)} · ` +
              `lag ${fmtLag(w.currentOutputWatermark ?? w.currentInputWatermark, w.now ?? now)}`,
          ),
        ),
        w.stall
          ? h(
              'p',
              { class: 'stall', 'data-testid': `wm-stall-${v.id}`, 'data-reason': w.stall.reason },
              `⚠ stalled for ${fmtMs(w.stall.stalledForMs)} (${w.stall.reason}): ${w.stall.message}`,
            )
          : null,
        h(
          'table',
          {},
          h(
            'tr',
            {},
            ['subtask', 'input watermark', 'output watermark', 'lag', 'held back by', 'inputs'].map((c) =>
              h('th', {}, c),
            ),
          ),
          w.subtasks.map((st) => subtaskWatermarkRow(v, st, w.now ?? now)),
        ),
      ),
    );
  }
  $('watermarks').replaceChildren(...out);
}

function subtaskWatermarkRow(v, st, now) {
  const held = st.heldBy === null ? null : st.inputs[st.heldBy];
  return h(
    'tr',
    { 'data-testid': `wm-subtask-${v.id}-${st.subtaskIndex}`, class: st.stall ? 'stalled' : '' },
    h('td', {}, `${st.subtaskIndex + 1}/${v.parallelism}${st.idle ? ' (idle)' : ''}`),
    h('td', {}, fmtWatermark(st.currentInputWatermark)),
    h('td', {}, fmtWatermark(st.currentOutputWatermark)),
    h('td', {}, fmtLag(st.currentOutputWatermark ?? st.currentInputWatermark, now)),
    h(
      'td',
      { 'data-testid': `wm-held-${v.id}-${st.subtaskIndex}` },
      held ? h('b', {}, `${held.kind} ${held.name}`) : '–',
      held ? ` — ${inputWhy(held, st.inputs)}` : '',
      st.stall
        ? h(
            'div',
            { class: 'stall', title: st.stall.message },
            `⚠ stalled ${fmtMs(st.stall.stalledForMs)} (${st.stall.reason})`,
          )
        : null,
    ),
    h(
      'td',
      {},
      h(
        'details',
        {},
        h('summary', {}, `${st.inputs.length} input${st.inputs.length === 1 ? '' : 's'}`),
        h(
          'table',
          { class: 'inputs' },
          h(
            'tr',
            {},
            ['input', 'watermark', 'state', 'last record', 'records', 'queued'].map((c) => h('th', {}, c)),
          ),
          st.inputs.map((inp) =>
            h(
              'tr',
              { class: inp.holdsMinimum ? 'holds' : '' },
              h('td', {}, `${inp.kind} ${inp.name}${inp.inputIndex > 1 ? ` (input ${inp.inputIndex})` : ''}`),
              h('td', {}, fmtWatermark(inp.watermark)),
              h('td', {}, inp.ended ? 'ended' : inp.idle ? 'idle' : inp.aligned ? 'active' : 'catching up'),
              h('td', {}, inp.lastRecordAgeMs === null ? 'never' : `${fmtMs(inp.lastRecordAgeMs)} ago`),
              h('td', {}, fmtNum(inp.numRecords)),
              h('td', {}, fmtNum(inp.queued)),
            ),
          ),
        ),
      ),
    ),
  );
}

// ---------- late data ----------

const isLateMetric = (k) => /late/i.test(k);

function renderLate() {
  const out = [];
  for (const v of state.job.vertices) {
    const d = state.vertices.get(v.id);
    if (d === undefined) continue;
    for (const op of d.operators) {
      const rows = d.subtasks.map((st) => ({
        subtask: st.subtaskIndex,
        m: st.operators.find((o) => o.id === op.id)?.metrics ?? {},
      }));
      const keys = [...new Set(rows.flatMap((r) => Object.keys(r.m).filter(isLateMetric)))].sort();
      const windowed = /window|join/i.test(op.kind) || /window|join/i.test(op.name);
      if (keys.length === 0 && !windowed) continue;
      const counts = keys.filter((k) => k.startsWith('num'));
      const others = keys.filter((k) => !k.startsWith('num'));
      const total = (k) => rows.reduce((a, r) => a + (r.m[k] ?? 0), 0);
      out.push(
        h(
          'div',
          { class: 'card', 'data-testid': `late-op-${op.id}` },
          h('h3', {}, `${op.name} `, h('span', { class: 'dim' }, `${op.kind} in ${v.name}`)),
          h(
            'p',
            { class: 'facts' },
            h(
              'span',
              { 'data-testid': `late-dropped-${op.id}` },
              `dropped as late: ${fmtNum(total('numLateRecordsDropped'))}`,
            ),
            ' · ',
            h(
              'span',
              { 'data-testid': `late-side-${op.id}` },
              `to the late side output: ${fmtNum(total('numLateRecordsToSideOutput'))}`,
            ),
          ),
          h(
            'table',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'subtask'),
              h('th', {}, 'current watermark'),
              counts.map((k) => h('th', {}, k)),
              others.map((k) => h('th', {}, k)),
            ),
            rows.map((r) =>
              h(
                'tr',
                {},
                h('td', {}, `${r.subtask + 1}/${v.parallelism}`),
                h('td', {}, fmtWatermark(subtaskWatermark(d, r.subtask))),
                counts.map((k) => h('td', {}, fmtNum(r.m[k] ?? 0))),
                others.map((k) => h('td', {}, fmtMetricTime(k, r.m[k]))),
              ),
            ),
          ),
          lateArrivals(op, v),
        ),
      );
    }
  }
  if (out.length === 0) out.push(h('p', { class: 'dim' }, 'This job has no window or join operators.'));
  $('late').replaceChildren(...out);
}
/** The log of late arrivals seen by this page: when, how many, and the watermark then. */
function lateArrivals(op, v) {
  const log = state.lateLog.get(op.id) ?? [];
  if (log.length === 0) return h('p', { class: 'dim' }, 'No late record since this page opened.');
  return h(
    'div',
    { 'data-testid': `late-log-${op.id}` },
    h('h4', {}, 'Late arrivals (newest first, to the second)'),
    h(
      'table',
      {},
      h(
        'tr',
        {},
        ['seen at', 'subtask', 'late records', 'watermark at their arrival'].map((c) => h('th', {}, c)),
      ),
      log.map((e) =>
        h(
          'tr',
          {},
          h('td', {}, fmtClock(e.at)),
          h('td', {}, `${e.subtask + 1}/${v.parallelism}`),
          h('td', {}, `+${e.delta}`),
          h('td', {}, fmtWatermark(e.watermark)),
        ),
      ),
    ),
  );
}
function subtaskWatermark(d, i) {
  return d.subtasks.find((st) => st.subtaskIndex === i)?.metrics.currentInputWatermark ?? null;
}
/** A late-data gauge: a watermark or timestamp as a time, anything else as a number. */
function fmtMetricTime(k, n) {
  if (n === undefined) return '–';
  if (/watermark|timestamp|time$/i.test(k)) return n <= -MAX_WATERMARK || n < 0 ? 'none' : fmtWatermark(n);
  return fmtNum(n);
}

// ---------- checkpoints ----------

function renderCheckpoints() {
  const cps = state.checkpoints;
  if (cps === null) return;
  if (cps.config === null) {
    $('cp-counts').replaceChildren(h('p', {}, 'Checkpointing is off (run with --checkpoint-interval).'));
    return;
  }
  const c = cps.counts;
  $('cp-counts').replaceChildren(
    fact('completed', c.numberOfCompletedCheckpoints, 'cp-completed'),
    fact('failed', c.numberOfFailedCheckpoints, 'cp-failed'),
    fact('in progress', c.numberOfInProgressCheckpoints),
    fact('last duration', fmtMs(c.lastCheckpointDuration)),
    fact('last size', fmtBytes(c.lastCheckpointSize)),
    fact('restored from', c.restoredCheckpointId ?? '–'),
    fact('every', fmtMs(cps.config.intervalMs)),
    fact('mode', cps.config.mode),
  );
  const done = cps.history.filter((e) => e.status === 'COMPLETED').reverse();
  drawChart(
    'duration',
    $('cp-duration'),
    done,
    (e) => e.durationMs,
    'ms',
    (v) => fmtMs(v),
  );
  drawChart(
    'size',
    $('cp-size'),
    done,
    (e) => e.sizeBytes ?? 0,
    'bytes',
    (v) => fmtBytes(v),
  );
  renderTimeline();
  renderHistory(cps);
}
function fact(label, value, testid) {
  return h(
    'span',
    { class: 'fact' },
    h('span', { class: 'dim' }, label),
    ' ',
    h('b', { 'data-testid': testid }, value),
  );
}

function drawChart(key, el, entries, y, unit, fmt) {
  const data = [entries.map((e) => e.id), entries.map(y)];
  const width = Math.max(300, el.clientWidth || 460);
  let chart = state.charts[key];
  if (chart === undefined || chart.root.parentNode !== el) {
    el.replaceChildren();
    chart = new uPlot(
      {
        width,
        height: 180,
        scales: { x: { time: false } },
        axes: [
          { label: 'checkpoint', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
          { values: (_u, ticks) => ticks.map(fmt), size: 70 },
        ],
        series: [
          { label: 'checkpoint' },
          {
            label: unit,
            stroke: key === 'size' ? '#2a7' : '#36c',
            width: 2,
            points: { size: 5 },
            value: (_u, v) => (v === null ? '–' : fmt(v)),
          },
        ],
      },
      data,
      el,
    );
    state.charts[key] = chart;
  } else chart.setData(data);
}

function renderHistory(cps) {
  const rows = cps.history.slice(0, 15).map((e) =>
    h(
      'tr',
      {
        class: `${e.status.toLowerCase()}${state.cpDetails?.id === e.id ? ' selected' : ''}`,
        'data-testid': `cp-row-${e.id}`,
        onclick: () => {
          state.cpSelected = e.id;
          state.cpDetails = null;
          loadCheckpoints().then(renderCheckpoints, console.warn);
        },
      },
      h('td', {}, `#${e.id}${e.savepoint ? ' savepoint' : ''}${e.final ? ' final' : ''}`),
      h('td', {}, e.status),
      h('td', {}, fmtClock(e.triggerTimestamp)),
      h('td', {}, fmtMs(e.durationMs)),
      h('td', {}, fmtBytes(e.sizeBytes)),
      h('td', {}, `${e.numAcknowledgedSubtasks}/${e.numSubtasks}`),
      h('td', {}, e.failureMessage ?? ''),
    ),
  );
  $('cp-history').replaceChildren(
    h(
      'table',
      { class: 'clickable' },
      h(
        'tr',
        {},
        ['id', 'status', 'triggered', 'duration', 'size', 'acknowledged', ''].map((c) => h('th', {}, c)),
      ),
      rows,
    ),
  );
}

const PHASES = [
  ['startDelayMs', 'barrier on its way', 'delay'],
  ['alignmentDurationMs', 'alignment', 'align'],
  ['syncDurationMs', 'synchronous part', 'sync'],
  ['asyncDurationMs', 'asynchronous part', 'async'],
];

/** A Gantt chart of one checkpoint: per subtask, trigger → barrier → alignment → sync → async → ack. */
function renderTimeline() {
  const d = state.cpDetails;
  const el = $('cp-timeline');
  if (d === null) {
    $('cp-timeline-title').textContent = 'Timeline';
    el.replaceChildren(h('p', { class: 'dim' }, 'No checkpoint yet.'));
    return;
  }
  $('cp-timeline-title').textContent =
    `Timeline of checkpoint #${d.id} (${d.status.toLowerCase()}, ${fmtMs(d.durationMs)}, triggered ${fmtClock(d.triggerTimestamp)})`;
  const rows = d.vertices.flatMap((v) => v.subtasks.map((st) => ({ v, st })));
  const total = Math.max(
    1,
    d.durationMs,
    ...rows.map(({ st }) => st.endToEndDurationMs ?? 0),
    ...rows.map(({ st }) => PHASES.reduce((a, [k]) => a + (st[k] ?? 0), 0)),
  );
  const labelW = 230;
  const W = 900;
  const rowH = 18;
  const top = 24;
  const x = (ms) => labelW + (ms / total) * (W - labelW - 20);
  const svg = s('svg', {
    width: W,
    height: top + rows.length * rowH + 30,
    'data-testid': 'cp-gantt',
    class: 'gantt',
  });
  for (let i = 0; i <= 4; i++) {
    const t = (total * i) / 4;
    svg.append(
      s('line', { x1: x(t), x2: x(t), y1: top - 4, y2: top + rows.length * rowH, class: 'grid' }),
      s('text', { x: x(t), y: top - 8, 'text-anchor': 'middle', class: 'axis' }, fmtMs(t)),
    );
  }
  rows.forEach(({ v, st }, i) => {
    const y = top + i * rowH;
    const g = s('g', { 'data-testid': `cp-gantt-row-${v.id}-${st.subtaskIndex}` });
    g.append(
      s(
        'text',
        { x: 4, y: y + 13, class: 'label' },
        `${v.name.slice(0, 28)} ${st.subtaskIndex + 1}/${v.parallelism}`,
      ),
    );
    if (st.finished)
      g.append(s('text', { x: x(0) + 4, y: y + 13, class: 'dim' }, 'finished: end state, no barrier'));
    else if (st.status === 'pending' && st.startDelayMs === null)
      g.append(s('text', { x: x(0) + 4, y: y + 13, class: 'dim' }, 'waiting for the barrier…'));
    let t = 0;
    for (const [k, label, cls] of PHASES) {
      const dur = st[k];
      if (dur === null || dur === undefined) continue;
      if (dur > 0)
        g.append(
          s(
            'rect',
            {
              x: x(t),
              y: y + 3,
              width: Math.max(1, x(t + dur) - x(t)),
              height: rowH - 6,
              class: `ph ${cls}`,
            },
            s('title', {}, `${label}: ${fmtMs(dur)}`),
          ),
        );
      t += dur;
    }
    if (st.endToEndDurationMs !== null)
      g.append(
        s(
          'line',
          {
            x1: x(st.endToEndDurationMs),
            x2: x(st.endToEndDurationMs),
            y1: y + 1,
            y2: y + rowH - 1,
            class: 'ack',
          },
          s('title', {}, `acknowledged after ${fmtMs(st.endToEndDurationMs)} (${fmtBytes(st.sizeBytes)})`),
        ),
      );
    svg.append(g);
  });
  const ly = top + rows.length * rowH + 18;
  let lx = labelW;
  for (const [, label, cls] of PHASES) {
    svg.append(s('rect', { x: lx, y: ly - 9, width: 12, height: 10, class: `ph ${cls}` }));
    svg.append(s('text', { x: lx + 16, y: ly, class: 'axis' }, label));
    lx += 24 + label.length * 6.5;
  }
  svg.append(s('line', { x1: lx, x2: lx, y1: ly - 10, y2: ly + 1, class: 'ack' }));
  svg.append(s('text', { x: lx + 6, y: ly, class: 'axis' }, 'acknowledged'));
  el.replaceChildren(svg);
}

// ---------- exceptions and restarts ----------

function renderExceptions() {
  const ex = state.exceptions;
  const el = $('exceptions');
  if (ex === null || (ex.entries.length === 0 && ex.restarts.length === 0)) {
    el.replaceChildren(
      h('p', { class: 'dim', 'data-testid': 'no-exceptions' }, 'No exceptions, no restarts.'),
    );
    return;
  }
  el.replaceChildren(
    h('h3', {}, `Exceptions (${ex.entries.length}${ex.truncated ? ', older ones dropped' : ''})`),
    ...ex.entries.map(exceptionCard),
    h('h3', {}, `Restarts (${ex.restarts.length})`),
    h(
      'table',
      {},
      h(
        'tr',
        {},
        ['attempt', 'at', 'after', 'from checkpoint', 'cause'].map((c) => h('th', {}, c)),
      ),
      ex.restarts.map((r) =>
        h(
          'tr',
          { 'data-testid': `restart-${r.attempt}` },
          h('td', {}, r.attempt),
          h('td', {}, fmtClock(r.timestamp)),
          h('td', {}, fmtMs(r.delayMs)),
          h('td', {}, r.fromCheckpoint === null ? 'the beginning' : `#${r.fromCheckpoint}`),
          h('td', {}, r.cause),
        ),
      ),
    ),
  );
}

function exceptionCard(e, i) {
  return h(
    'div',
    { class: 'card exception', 'data-testid': `exception-${i}` },
    h('div', {}, h('b', {}, e.exceptionName), e.code ? ` [${e.code}]` : '', ': ', e.message),
    h(
      'div',
      { class: 'dim' },
      `${fmtClock(e.timestamp)} · attempt ${e.attempt}${e.restarted ? ' · restarted' : ' · not restarted'}`,
      e.operatorName ? ` · operator ${e.operatorName}` : '',
      e.taskName ? ` · subtask ${e.taskName}` : '',
    ),
    e.record
      ? h('div', {}, 'record: ', h('code', { 'data-testid': `exception-record-${i}` }, e.record))
      : null,
    h('details', {}, h('summary', {}, 'stack trace'), h('pre', {}, e.stacktrace)),
  );
}

// ---------- live tail ----------

const tail = { source: null, lines: [], dirty: false, vid: null };

function fillTailVertices() {
  const sel = $('tail-vertex');
  const keep = sel.value;
  sel.replaceChildren(...state.plan.vertices.map((v) => h('option', { value: v.id }, v.name)));
  if (keep !== '' && state.plan.vertices.some((v) => String(v.id) === keep)) sel.value = keep;
  else {
    // Default to the last vertex that is not a sink (what a job computes), or the first.
    const sinkless = state.plan.vertices.filter((v) => !v.operators.at(-1).sink);
    sel.value = String((sinkless.at(-1) ?? state.plan.vertices[0]).id);
  }
}

function startTail() {
  stopTail();
  tail.vid = Number($('tail-vertex').value);
  tail.lines = [];
  const es = new EventSource(jobPath(`/vertices/${tail.vid}/tail?rate=10`));
  tail.source = es;
  $('tail-toggle').textContent = 'Stop';
  $('tail-status').textContent = 'connecting…';
  es.onopen = () => ($('tail-status').textContent = 'live (at most 10 records/s)');
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      tail.source = null;
      $('tail-toggle').textContent = 'Start';
    }
    $('tail-status').textContent =
      es.readyState === EventSource.CLOSED
        ? 'closed: the server refused it (has the job ended?)'
        : 'connection lost, reconnecting…';
  };
  es.addEventListener('end', (m) => {
    es.close();
    if (tail.source === es) tail.source = null;
    $('tail-toggle').textContent = 'Start';
    let ended = '';
    try {
      ended = ` (${JSON.parse(m.data).state})`;
    } catch {}
    $('tail-status').textContent = `ended: the job ended${ended}`;
  });
  es.onmessage = (m) => {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    const ts = ev.timestamp === null ? '' : ` @${fmtTime(ev.timestamp)}`;
    const skipped = ev.skipped > 0 ? ` (+${ev.skipped} not shown)` : '';
    tail.lines.push(`[${ev.subtaskIndex + 1}]${ts} ${JSON.stringify(ev.value)}${skipped}`);
    if (tail.lines.length > 200) tail.lines.splice(0, tail.lines.length - 200);
    tail.dirty = true;
  };
}
function stopTail() {
  if (tail.source !== null) tail.source.close();
  tail.source = null;
  $('tail-toggle').textContent = 'Start';
  $('tail-status').textContent = 'stopped';
}
// Render at most 4 times a second, however fast lines come.
setInterval(() => {
  if (!tail.dirty) return;
  tail.dirty = false;
  const pre = $('tail-lines');
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.replaceChildren(...tail.lines.map((l) => h('div', { 'data-testid': 'tail-line' }, l)));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}, 250);

// ---------- start ----------

$('tail-toggle').addEventListener('click', () => (tail.source === null ? startTail() : stopTail()));
$('tail-vertex').addEventListener('change', () => tail.source !== null && startTail());
window.addEventListener('hashchange', () => {
  showTab();
  if (currentTab() !== 'tail' && tail.source !== null) stopTail();
  render();
});
showTab();
tick();
