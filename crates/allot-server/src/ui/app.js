// allot dashboard: plain JS, no build step. Talks to the /v1 API with a bearer
// token kept in this browser's localStorage; live updates from /v1/events (SSE,
// read with fetch so that the token goes in a header).
(function () {
  'use strict';
  const $ = (s, el) => (el || document).querySelector(s);
  const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const KEY = 'allot.token';
  let token = localStorage.getItem(KEY) || '';
  let route = { view: 'overview', arg: null };
  let refreshTimer = null;
  let pollTimer = null;
  let events = null;
  let logAbort = null;

  // ----- API -----
  async function api(path, opts) {
    opts = opts || {};
    const headers = { Authorization: 'Bearer ' + token };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (r.status === 401) { signOut('the token was refused: sign in again'); throw new Error('unauthorized'); }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!r.ok) throw new Error((data && data.message) ? (data.field ? data.field + ': ' : '') + data.message : r.status + ' ' + r.statusText);
    return data;
  }

  // ----- formatting -----
  const num = (v) => { const r = Math.round(v * 100) / 100; return Number.isInteger(r) ? String(r) : r.toFixed(2).replace(/0+$/, '').replace(/\.$/, ''); };
  function dur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
    return Math.floor(s / 86400) + 'd' + String(Math.floor(s % 86400 / 3600)).padStart(2, '0') + 'h';
  }
  const when = (ms) => ms ? new Date(ms).toLocaleString() : '-';
  function startIn(ms) { if (!ms) return '-'; const d = ms - Date.now(); return d <= 0 ? 'now' : d < 86400000 ? 'in ' + dur(d) : when(ms); }
  const badge = (s) => '<span class="badge s-' + esc(s) + '">' + esc(s) + '</span>';
  function gpusOf(j) {
    const s = j.spec || {};
    if (s.gpu_milli) return num(s.gpu_milli / 1000);
    if (s.gpus != null) return s.replicas > 1 ? s.replicas + 'x' + s.gpus : String(s.gpus);
    return '-';
  }
  const flavorOf = (j) => j.placement ? j.placement.flavor : ((j.spec.flavors || []).join(',') || 'any');
  function timesOf(j) {
    const now = Date.now();
    if (j.started_at_ms) return 'ran ' + dur((j.ended_at_ms || now) - j.started_at_ms);
    return 'waited ' + dur((j.ended_at_ms || now) - j.submitted_at_ms);
  }
  function bar(used, total) {
    const pct = total > 0 ? Math.min(100, 100 * used / total) : (used > 0 ? 100 : 0);
    return '<div class="bar" title="' + esc(num(used) + ' of ' + num(total)) + '"><span class="' + (used > total ? 'over' : '') + '" style="width:' + pct.toFixed(1) + '%"></span></div>';
  }

  // ----- views -----
  // The utilisation chart is drawn at the pixel width of its box (no stretching:
  // text keeps its shape and the labels stay inside), again when the window resizes.
  let chartHistory = null;
  function chart(history) {
    chartHistory = history;
    return '<div id="util-chart-box"></div>';
  }
  function drawChart() {
    const box = $('#util-chart-box');
    if (!box) return;
    const history = chartHistory;
    if (!history || history.length < 2) { box.innerHTML = '<p class="muted">The chart fills in as the server samples (every 5 s).</p>'; return; }
    const W = Math.max(200, Math.floor(box.clientWidth)), H = 180;
    const L = 40, R = 4, T = 8, B = 22; // room for the labels: % on the left, times below
    const t0 = history[0].at_ms, t1 = history[history.length - 1].at_ms;
    const x = (t) => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
    const y = (u) => T + (H - T - B) * (1 - u);
    const pts = history.map((s) => [x(s.at_ms), y(s.gpus > 0 ? Math.min(1, s.allocated / s.gpus) : 0)]);
    const line = pts.map((p, i) => (i ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ');
    const area = line + ' L' + pts[pts.length - 1][0].toFixed(1) + ' ' + y(0) + ' L' + pts[0][0].toFixed(1) + ' ' + y(0) + ' Z';
    let g = '';
    for (const u of [0, 0.5, 1]) {
      g += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + y(u) + '" y2="' + y(u) + '"/>' +
        '<text x="' + (L - 6) + '" y="' + (y(u) + 4) + '" text-anchor="end">' + (u * 100) + '%</text>';
    }
    const tick = (t, anchor) => '<text x="' + x(t).toFixed(1) + '" y="' + (H - 6) + '" text-anchor="' + anchor + '">' + esc(new Date(t).toLocaleTimeString()) + '</text>';
    g += tick(t0, 'start') + tick(t1, 'end');
    if (W >= 520) g += tick((t0 + t1) / 2, 'middle');
    box.innerHTML = '<svg class="chart" id="util-chart" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="GPU allocation over time">' + g + '<path class="area" d="' + area + '"/><path class="line" d="' + line + '"/></svg>';
  }
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawChart, 150); });

  // A node's colour: its share of allocated GPUs, from pale blue (idle) through
  // green and yellow to dark red (full). The legend is drawn with the same function.
  const heatColour = (f) => 'hsl(' + (215 - 215 * f).toFixed(0) + ',70%,' + (92 - 45 * f).toFixed(0) + '%)';
  function heat(nodes) {
    const cells = nodes.map((n) => {
      const alloc = n.gpu_free_milli.reduce((a, m) => a + (1000 - Math.min(1000, m)) / 1000, 0);
      const f = n.gpus ? alloc / n.gpus : 0;
      const cls = !n.up ? 'down' : (n.drained ? 'drained' : '');
      const bg = n.up ? 'background:' + heatColour(f) : '';
      const tip = n.name + ' (' + n.flavor + ', ' + n.at + '): ' + num(alloc) + '/' + n.gpus + ' GPUs' + (!n.up ? ', down' : n.drained ? ', drained' : '');
      return '<div class="' + cls + '" style="' + bg + '" title="' + esc(tip) + '" data-node="' + esc(n.name) + '"></div>';
    });
    const stops = [0, 0.25, 0.5, 0.75, 1].map((f) => heatColour(f) + ' ' + (f * 100) + '%').join(', ');
    return '<div class="heat" id="heatmap">' + cells.join('') + '</div>' +
      '<div class="legend" id="heat-legend"><span class="scale">GPUs allocated: 0%<i style="background:linear-gradient(to right, ' + stops + ')"></i>100%</span>' +
      '<span><i class="swatch down"></i>down</span><span><i class="swatch drained"></i>drained</span></div>';
  }

  async function overview() {
    const [c, q] = await Promise.all([api('/v1/cluster'), api('/v1/queue')]);
    const free = c.capacity.reduce((a, r) => a + r.free, 0);
    const util = c.gpus ? 100 * c.allocated / c.gpus : 0;
    const rows = c.capacity.map((r) => '<tr><td>' + esc(r.site) + '</td><td>' + esc(r.flavor) + '</td><td>' + r.nodes + '</td><td>' + r.gpus + '</td><td>' + num(r.allocated) + '</td><td>' + r.free + '</td><td>' + bar(r.allocated, r.gpus) + '</td></tr>').join('');
    return '<h1 id="overview">Cluster overview</h1>' +
      '<div class="stats">' +
      stat('gpus-total', c.gpus, 'GPUs') + stat('gpus-allocated', num(c.allocated), 'allocated') + stat('gpus-free', free, 'free (whole)') +
      stat('util', util.toFixed(0) + '%', 'utilisation') + stat('jobs-running', q.running.length, 'running jobs') + stat('jobs-pending', q.pending.length, 'pending jobs') +
      stat('nodes-up', c.nodes_up, 'nodes up') + stat('nodes-out', c.nodes_drained + c.nodes_down, 'drained or down') +
      '</div>' +
      '<h2>GPUs by site and flavor</h2><div class="scroll"><table id="capacity"><thead><tr><th>Site</th><th>Flavor</th><th>Nodes</th><th>GPUs</th><th>Allocated</th><th>Free</th><th></th></tr></thead><tbody>' + rows + '</tbody></table></div>' +
      '<h2>Utilisation over time</h2><div class="card">' + chart(c.history) + '</div>' +
      '<h2>Nodes</h2><div class="card">' + heat(c.nodes) + '</div>';
  }
  const stat = (id, v, k) => '<div class="stat"><div class="v" id="' + id + '">' + esc(v) + '</div><div class="k">' + esc(k) + '</div></div>';

  function jobRow(j, extra) {
    return '<tr class="clickable" data-job="' + j.id + '" data-state="' + esc(j.state) + '"><td><a href="#/job/' + j.id + '">' + j.id + '</a></td><td>' + esc(j.spec.name || '-') + '</td><td>' + esc(j.tenant) + '</td><td>' + badge(j.state) + '</td><td>' + esc(gpusOf(j)) + '</td><td>' + esc(flavorOf(j)) + '</td><td>' + esc(timesOf(j)) + '</td>' + (extra || '') + '</tr>';
  }
  const JOB_HEAD = '<th>ID</th><th>Name</th><th>Tenant</th><th>State</th><th>GPUs</th><th>Flavor</th><th>Waited/ran</th>';

  async function queue() {
    const q = await api('/v1/queue');
    const pend = q.pending.map((p) => jobRow(p.job, '<td>' + esc(startIn(p.estimated_start_ms)) + '</td><td class="wrap"><b>' + esc(p.reason) + '</b>: ' + esc(p.message) + '</td>')).join('');
    const run = q.running.map((j) => jobRow(j, '<td>' + esc((j.placement ? j.placement.slots.map((s) => s.node) : []).join(', ')) + '</td>')).join('');
    const rec = q.recent.map((j) => jobRow(j, '<td class="wrap">' + esc(j.message || '') + '</td>')).join('');
    return '<h1>Queue</h1>' +
      '<details class="card"><summary>Submit a job</summary><form id="submit-form" class="row" style="margin-top:.6rem">' +
      '<div><label for="f-tenant">Tenant</label><input id="f-tenant" required placeholder="local"></div>' +
      '<div><label for="f-gpus">GPUs</label><input id="f-gpus" type="number" min="1" value="1"></div>' +
      '<div style="flex:3 1 16rem"><label for="f-cmd">Command (sh -c)</label><input id="f-cmd" required value="echo hello from allot; sleep 10"></div>' +
      '<button type="submit">Submit</button><p id="submit-msg" class="muted" style="flex-basis:100%"></p></form></details>' +
      '<h2>Pending (' + q.pending.length + ')</h2><div class="scroll"><table id="pending"><thead><tr>' + JOB_HEAD + '<th>Est. start</th><th>Why it waits</th></tr></thead><tbody>' + (pend || '<tr><td colspan="9" class="muted">nothing waits</td></tr>') + '</tbody></table></div>' +
      '<h2>Running (' + q.running.length + ')</h2><div class="scroll"><table id="running"><thead><tr>' + JOB_HEAD + '<th>Nodes</th></tr></thead><tbody>' + (run || '<tr><td colspan="8" class="muted">nothing runs</td></tr>') + '</tbody></table></div>' +
      '<h2>Recently ended</h2><div class="scroll"><table id="recent"><thead><tr>' + JOB_HEAD + '<th>Message</th></tr></thead><tbody>' + (rec || '<tr><td colspan="8" class="muted">none yet</td></tr>') + '</tbody></table></div>';
  }

  async function tenants() {
    const t = await api('/v1/tenants/use');
    const rows = t.tenants.map((u) => {
      const fl = u.flavors.length ? u.flavors : [null];
      return fl.map((f, i) => '<tr data-tenant="' + esc(u.path) + '">' +
        (i === 0 ? '<td rowspan="' + fl.length + '">' + esc(u.path) + '</td><td rowspan="' + fl.length + '">' + (u.fair_share * 100).toFixed(0) + '% / ' + (u.use_share * 100).toFixed(0) + '%</td>' : '') +
        (f ? '<td>' + esc(f.flavor) + '</td><td class="used">' + num(f.used) + ' / ' + num(f.nominal) + '</td><td>' + bar(f.used, f.nominal) + '</td><td>' + num(f.borrowed) + '</td><td>' + num(f.lent) + '</td><td>' + num(f.lendable) + '</td>' : '<td colspan="6" class="muted">no quota</td>') +
        (i === 0 ? '<td rowspan="' + fl.length + '">' + u.running_jobs + ' / ' + u.pending_jobs + '</td><td rowspan="' + fl.length + '">' + (u.budget_remaining_gpu_hours == null ? '-' : num(Math.round(u.budget_remaining_gpu_hours)) + ' GPU-h') + '</td>' : '') +
        '</tr>').join('');
    }).join('');
    return '<h1>Tenants</h1><p class="muted">Use against nominal quota per flavor; borrowed is use above nominal, lent is idle nominal that siblings use now. Fair share: the weight among siblings, against the share of their use.</p>' +
      '<div class="scroll"><table id="tenants"><thead><tr><th>Tenant</th><th>Fair share / use</th><th>Flavor</th><th>Used / nominal</th><th></th><th>Borrowed</th><th>Lent</th><th>Lendable</th><th>Running / pending</th><th>Budget left</th></tr></thead><tbody>' + rows + '</tbody></table></div>';
  }

  async function nodes() {
    const l = await api('/v1/nodes');
    const rows = l.nodes.map((n) => {
      const alloc = n.gpu_free_milli.reduce((a, m) => a + (1000 - Math.min(1000, m)) / 1000, 0);
      const state = !n.up ? 'down' : n.drained ? 'drained' : 'up';
      const agent = n.agent ? (n.agent.connected ? 'connected' : 'away') + (n.agent.emulated ? ' (emulated)' : '') : '-';
      const act = n.drained ? '<button class="secondary" data-undrain="' + esc(n.name) + '">Undrain</button>' : '<button class="danger" data-drain="' + esc(n.name) + '">Drain</button>';
      return '<tr data-node="' + esc(n.name) + '"><td>' + esc(n.name) + '</td><td>' + esc(n.flavor) + '</td><td>' + esc(n.at) + '</td><td>' + badge(state) + (n.reason ? ' <span class="muted">' + esc(n.reason) + '</span>' : '') + '</td><td>' + esc(agent) + '</td><td>' + num(alloc) + ' / ' + n.gpus + '</td><td>' + bar(alloc, n.gpus) + '</td><td>' + n.running_jobs.map((id) => '<a href="#/job/' + id + '">' + id + '</a>').join(', ') + '</td><td>' + act + '</td></tr>';
    }).join('');
    return '<h1>Nodes</h1><div class="scroll"><table id="nodes"><thead><tr><th>Node</th><th>Flavor</th><th>Place</th><th>Health</th><th>Agent</th><th>GPUs used</th><th></th><th>Jobs</th><th></th></tr></thead><tbody>' + rows + '</tbody></table></div><p id="node-msg" class="error"></p>';
  }

  async function job(id) {
    const [j, e] = await Promise.all([api('/v1/jobs/' + encodeURIComponent(id)), api('/v1/jobs/' + encodeURIComponent(id) + '/explain').catch(() => null)]);
    const kv = (k, v) => '<dt>' + esc(k) + '</dt><dd>' + v + '</dd>';
    const live = !['completed', 'cancelled', 'failed'].includes(j.state);
    return '<h1>Job ' + j.id + ' ' + badge(j.state) + ' <span class="muted" id="job-state" data-state="' + esc(j.state) + '"></span></h1>' +
      '<div class="card"><dl class="kv">' +
      kv('name', esc(j.spec.name || '-')) + kv('tenant', esc(j.tenant)) + kv('project', esc(j.project)) + kv('user', esc(j.user)) +
      kv('class', esc(j.spec.class || "(the cluster's default class)")) + kv('GPUs', esc(gpusOf(j))) + kv('flavor', esc(flavorOf(j))) +
      kv('submitted', esc(when(j.submitted_at_ms))) + kv('started', esc(when(j.started_at_ms))) + kv('ended', esc(when(j.ended_at_ms))) + kv('time', esc(timesOf(j))) +
      kv('nodes', esc(j.placement ? j.placement.slots.map((s) => s.node).join(', ') : '-')) +
      kv('command', '<code>' + esc((j.spec.command || []).join(' ')) + '</code>') +
      (e && (j.state === 'pending' || j.state === 'held') ? kv('why it waits', '<b>' + esc(e.reason) + '</b>: ' + esc(e.message)) + kv('estimated start', esc(startIn(e.estimated_start_ms))) : '') +
      (j.message ? kv('message', esc(j.message)) : '') +
      '</dl>' + (live ? '<p class="row" style="margin-top:.8rem"><button class="danger" data-act="cancel">Cancel</button>' + (j.state === 'held' ? '<button class="secondary" data-act="release">Release</button>' : j.state === 'pending' ? '<button class="secondary" data-act="hold">Hold</button>' : '') + '</p>' : '') + '</div>' +
      '<h2>Logs</h2><pre class="logs" id="logs">' + (j.started_at_ms ? 'loading…' : 'no output yet: the job has not started') + '</pre>';
  }

  async function followLogs(id, state, started) {
    if (logAbort) logAbort.abort();
    const pre = $('#logs');
    if (!pre || !started) return;
    logAbort = new AbortController();
    const follow = !['completed', 'cancelled', 'failed'].includes(state);
    try {
      const r = await fetch('/v1/jobs/' + encodeURIComponent(id) + '/logs' + (follow ? '?follow=true' : ''), { headers: { Authorization: 'Bearer ' + token }, signal: logAbort.signal });
      if (!r.ok) { const b = await r.json().catch(() => ({})); pre.textContent = 'no logs: ' + (b.message || r.status); return; }
      pre.textContent = '';
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += dec.decode(value, { stream: true });
        if (stick) pre.scrollTop = pre.scrollHeight;
      }
      if (!pre.textContent) pre.textContent = '(no output)';
    } catch (e) { if (e.name !== 'AbortError') pre.textContent += '\n[log stream ended: ' + e.message + ']'; }
  }

  // ----- routing and rendering -----
  function parseRoute() {
    const h = location.hash.replace(/^#\/?/, '');
    const [view, arg] = h.split('/');
    return { view: ['overview', 'queue', 'tenants', 'nodes', 'job'].includes(view) ? view : 'overview', arg: arg || null };
  }

  let rendering = false, again = false;
  async function render() {
    if (!token) return;
    if (rendering) { again = true; return; }
    rendering = true;
    try {
      const view = $('#view');
      for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === route.view);
      let html;
      const openForm = $('#submit-form') && $('details.card') && $('details.card').open;
      const keep = openForm ? { t: $('#f-tenant').value, g: $('#f-gpus').value, c: $('#f-cmd').value, m: $('#submit-msg').textContent } : null;
      if (route.view === 'queue') html = await queue();
      else if (route.view === 'tenants') html = await tenants();
      else if (route.view === 'nodes') html = await nodes();
      else if (route.view === 'job') html = await job(route.arg);
      else html = await overview();
      // Do not redraw a job page (and its log stream) unless its state changed.
      if (route.view === 'job') {
        const st = (html.match(/id="job-state" data-state="([^"]*)"/) || [])[1];
        const cur = $('#job-state');
        if (cur && cur.dataset.state === st && view.dataset.job === route.arg) return;
        view.innerHTML = html;
        view.dataset.job = route.arg;
        const j = await api('/v1/jobs/' + encodeURIComponent(route.arg));
        followLogs(route.arg, j.state, !!j.started_at_ms);
      } else {
        view.dataset.job = '';
        view.innerHTML = html;
        if (route.view === 'overview') drawChart();
        if (keep) { $('details.card').open = true; $('#f-tenant').value = keep.t; $('#f-gpus').value = keep.g; $('#f-cmd').value = keep.c; $('#submit-msg').textContent = keep.m; }
      }
      if (route.view === 'queue' && !$('#f-tenant').value) $('#f-tenant').value = localStorage.getItem('allot.tenant') || '';
    } catch (e) {
      if (e.message !== 'unauthorized') $('#view').innerHTML = '<p class="error">' + esc(e.message) + '</p>';
    } finally {
      rendering = false;
      if (again) { again = false; render(); }
    }
  }

  function soon() { clearTimeout(refreshTimer); refreshTimer = setTimeout(render, 250); }

  async function listen() {
    if (events) events.abort();
    events = new AbortController();
    const live = $('#live');
    try {
      const r = await fetch('/v1/events', { headers: { Authorization: 'Bearer ' + token }, signal: events.signal });
      if (!r.ok) throw new Error('events: ' + r.status);
      live.classList.add('on'); live.textContent = '● live'; live.title = 'live updates on';
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const msg = buf.slice(0, i); buf = buf.slice(i + 2);
          if (/^event: (job|lagged)/m.test(msg)) soon();
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
    }
    live.classList.remove('on'); live.textContent = '○'; live.title = 'reconnecting';
    if (token) setTimeout(listen, 2000);
  }

  function signedIn() {
    $('#signin-view').hidden = true;
    $('#view').hidden = false;
    $('#nav').hidden = false;
    $('#signout').hidden = false;
    route = parseRoute();
    render();
    listen();
    clearInterval(pollTimer);
    // Node health and the chart change without job events: refresh now and then.
    pollTimer = setInterval(() => { if (route.view !== 'job') render(); }, 10000);
  }

  function signOut(why) {
    token = '';
    localStorage.removeItem(KEY);
    if (events) events.abort();
    if (logAbort) logAbort.abort();
    clearInterval(pollTimer);
    $('#view').hidden = true; $('#nav').hidden = true; $('#signout').hidden = true;
    $('#signin-view').hidden = false;
    $('#signin-error').textContent = why || '';
  }

  $('#signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    try {
      await api('/v1/tenants');
      localStorage.setItem(KEY, token);
      $('#token').value = '';
      signedIn();
    } catch (e) {
      if (e.message !== 'unauthorized') signOut(e.message);
    }
  });
  $('#signout').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', () => { route = parseRoute(); if (logAbort) logAbort.abort(); $('#view').dataset.job = ''; render(); });

  document.addEventListener('click', async (ev) => {
    const t = ev.target;
    const row = t.closest && t.closest('tr.clickable');
    if (row && !t.closest('a')) { location.hash = '#/job/' + row.dataset.job; return; }
    if (t.dataset && t.dataset.act) {
      try { await api('/v1/jobs/' + encodeURIComponent(route.arg) + '/' + t.dataset.act, { method: 'POST' }); $('#view').dataset.job = ''; render(); } catch (e) { alert(e.message); }
    }
    if (t.dataset && (t.dataset.drain || t.dataset.undrain)) {
      const name = t.dataset.drain || t.dataset.undrain;
      if (t.dataset.drain && !confirm('Drain ' + name + '? Its running jobs are stopped and requeued.')) return;
      try { await api('/v1/nodes/' + encodeURIComponent(name) + '/' + (t.dataset.drain ? 'drain' : 'undrain'), { method: 'POST' }); render(); } catch (e) { $('#node-msg').textContent = e.message; }
    }
  });
  document.addEventListener('submit', async (ev) => {
    if (ev.target.id !== 'submit-form') return;
    ev.preventDefault();
    const tenant = $('#f-tenant').value.trim();
    const body = { tenant, gpus: parseInt($('#f-gpus').value, 10) || 1, command: ['sh', '-c', $('#f-cmd').value] };
    try {
      const r = await api('/v1/jobs', { method: 'POST', body });
      localStorage.setItem('allot.tenant', tenant);
      $('#submit-msg').textContent = 'submitted job ' + r.id;
      soon();
    } catch (e) { $('#submit-msg').textContent = 'refused: ' + e.message; }
  });

  if (token) signedIn(); else signOut();
})();
