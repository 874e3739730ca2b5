// The tidegate dashboard: signs in with the admin token (kept in sessionStorage, sent
// only as `Authorization: Bearer`), reads the snapshot stream of
// /admin/dashboard/events with fetch, and draws rates, the store, the tracker and the
// work queues; key lookup, top keys and resets call the admin routes.
'use strict';

(() => {
  const TOKEN_KEY = 'tidegate.admin-token';
  const HISTORY_SECONDS = 180;    // charted window
  const QUEUE_RATE_WINDOW_MS = 10000;
  const TOP_REFRESH_MS = 5000;
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY);
  let stream = null;              // AbortController of the event stream
  let last = null;                // previous snapshot
  const history = new Map();      // policy -> [{t, allowed, denied}] (rates per second)
  const queueSamples = new Map(); // queue -> [{t, started, completed}]
  let topTimer = null;
  let policiesShown = '';

  class Refused extends Error {}

  // ---- calls ----------------------------------------------------------------------

  async function call(path, options = {}) {
    const resp = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${token}`, ...(options.headers || {}) },
      cache: 'no-store',
    });
    if (resp.status === 401) {
      throw new Refused(await message(resp));
    }
    return resp;
  }

  async function message(resp) {
    try {
      const body = await resp.json();
      return body.message || `${resp.status} ${resp.statusText}`;
    } catch {
      return `${resp.status} ${resp.statusText}`;
    }
  }

  // ---- sign in / out --------------------------------------------------------------

  function showLogin(error) {
    stopStream();
    $('board').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    setStatus('signed-out', 'signed out');
    $('uptime').textContent = '';
    const e = $('login-error');
    e.hidden = !error;
    e.textContent = error || '';
  }

  function refused(reason) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(`Refused: the server answered 401 Unauthorized (${reason}). Check the admin token.`);
  }

  async function signIn(candidate) {
    token = candidate;
    try {
      const resp = await call('/admin/stats');
      if (!resp.ok) {
        showLogin(`The server answered ${resp.status}: ${await message(resp)}`);
        return;
      }
    } catch (e) {
      if (e instanceof Refused) {
        refused(e.message);
      } else {
        showLogin(`Cannot reach the server: ${e.message}`);
      }
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    $('login-error').hidden = true;
    $('board').hidden = false;
    $('logout').hidden = false;
    startStream();
    refreshTop();
    clearInterval(topTimer);
    topTimer = setInterval(refreshTop, TOP_REFRESH_MS);
  }

  function signOut() {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(topTimer);
    showLogin('');
  }

  function setStatus(state, text) {
    const s = $('status');
    s.dataset.state = state;
    s.textContent = text;
  }

  // ---- the event stream -----------------------------------------------------------

  function stopStream() {
    if (stream) {
      stream.abort();
      stream = null;
    }
  }

  async function startStream() {
    stopStream();
    const controller = new AbortController();
    stream = controller;
    while (stream === controller) {
      try {
        const resp = await call('/admin/dashboard/events', { signal: controller.signal });
        if (!resp.ok || !resp.body) {
          throw new Error(`${resp.status} ${await message(resp)}`);
        }
        setStatus('live', 'live');
        await readEvents(resp.body, controller);
      } catch (e) {
        if (e instanceof Refused) {
          refused(e.message);
          return;
        }
        if (controller.signal.aborted) {
          return;
        }
      }
      if (stream !== controller) {
        return;
      }
      setStatus('reconnecting', 'reconnecting…');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  // Server-sent events from a fetch body: blocks separated by a blank line, each with
  // `event:` and `data:` lines.
  async function readEvents(body, controller) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    while (stream === controller) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) {
            name = line.slice(6).trim();
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
        if (name === 'snapshot' && data.length) {
          update(JSON.parse(data.join('\n')));
        }
      }
    }
  }

  // ---- one snapshot ---------------------------------------------------------------

  function update(snap) {
    $('uptime').textContent = `up ${duration(snap.uptime_s * 1000)}`;
    const names = Object.keys(snap.policies).sort();
    if (names.join('\n') !== policiesShown) {
      policiesShown = names.join('\n');
      fillSelect($('lookup-policy'), names);
      fillSelect($('top-policy'), names);
      refreshTop();
    }
    for (const name of names) {
      const p = snap.policies[name];
      const h = history.get(name) || [];
      const before = last && last.policies[name];
      if (before && snap.t_ms > last.t_ms) {
        const dt = (snap.t_ms - last.t_ms) / 1000;
        h.push({
          t: snap.t_ms,
          allowed: Math.max(0, p.allowed - before.allowed) / dt,
          denied: Math.max(0, p.denied - before.denied) / dt,
        });
      }
      while (h.length && h[0].t < snap.t_ms - HISTORY_SECONDS * 1000) {
        h.shift();
      }
      history.set(name, h);
      drawPolicy(name, p, h, snap.t_ms);
    }
    for (const el of [...$('policies').children]) {
      if (!names.includes(el.dataset.policy)) {
        el.remove();
      }
    }
    drawStore(snap);
    drawTracker(snap.tracker);
    drawQueues(snap.queues || [], snap.t_ms);
    last = snap;
  }

  function fillSelect(select, names) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(chosen)) {
      select.value = chosen;
    }
  }

  function drawPolicy(name, p, h, now) {
    let card = [...$('policies').children].find((c) => c.dataset.policy === name);
    if (!card) {
      card = el('article', { class: 'card policy' });
      card.dataset.policy = name;
      card.append(
        el('h3', {}, name),
        el('div', { class: 'policy-text' }),
        el('div', { class: 'rates' },
          el('span', { class: 'rate allowed' }, el('b'), ' allowed/s'),
          el('span', { class: 'rate denied' }, el('b'), ' denied/s'),
          el('span', { class: 'rate totals' })),
        svg('svg', { class: 'chart' }));
      $('policies').append(card);
    }
    const latest = h.length ? h[h.length - 1] : { allowed: 0, denied: 0 };
    const maxDenied = Math.max(0, ...h.map((x) => x.denied));
    const maxAllowed = Math.max(0, ...h.map((x) => x.allowed));
    card.dataset.allowedRate = latest.allowed.toFixed(2);
    card.dataset.deniedRate = latest.denied.toFixed(2);
    card.dataset.deniedMax = maxDenied.toFixed(2);
    card.dataset.allowedMax = maxAllowed.toFixed(2);
    card.querySelector('.policy-text').textContent = p.policy;
    card.querySelector('.rate.allowed b').textContent = rate(latest.allowed);
    card.querySelector('.rate.denied b').textContent = rate(latest.denied);
    card.querySelector('.rate.totals').textContent =
      `total ${p.allowed} allowed, ${p.denied} denied` + (p.errors ? `, ${p.errors} errors` : '');
    chart(card.querySelector('svg'), h, now, Math.max(maxAllowed, maxDenied));
  }

  // Both series on one SVG: x = the time since the first point (at least 30 s, at most
  // HISTORY_SECONDS), y = 0 .. a rounded maximum; a dot marks each series' latest rate.
  // Drawn in the element's own pixels (no stretched text).
  function chart(root, h, now, max) {
    const W = Math.max(200, Math.round(root.getBoundingClientRect().width) || 360);
    const H = 110, L = 34, B = 14, T = 6;
    root.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const top = niceMax(max);
    const span = Math.min(HISTORY_SECONDS * 1000, Math.max(30000, h.length ? now - h[0].t : 0));
    const x = (t) => L + (W - L) * (1 - (now - t) / span);
    const y = (v) => T + (H - B - T) * (1 - v / top);
    const line = (key) => h.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
    root.dataset.max = String(top);
    root.replaceChildren(
      svg('line', { class: 'axis', x1: L, y1: y(0), x2: W, y2: y(0) }),
      svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: y(0) }),
      svg('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, rate(top)),
      svg('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, '0'),
      svg('text', { x: L, y: H - 2 }, `${Math.round(span / 1000)} s ago`),
      svg('text', { x: W, y: H - 2, 'text-anchor': 'end' }, 'now'),
      svg('polyline', { class: 'allowed', points: line('allowed') }),
      svg('polyline', { class: 'denied', points: line('denied') }),
      ...(h.length ? ['allowed', 'denied'].map((key) => svg('circle', {
        class: `${key} dot`, r: 2.5, cx: x(h[h.length - 1].t), cy: y(h[h.length - 1][key]),
      })) : []));
  }

  function niceMax(v) {
    if (v <= 1) {
      return 1;
    }
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
  }

  function drawStore(snap) {
    const s = snap.store;
    const rows = [['type', s.type]];
    if (s.type === 'memory') {
      for (const [name, p] of Object.entries(snap.policies).sort()) {
        if (p.memory) {
          rows.push([`${name} keys`, `${p.memory.keys} of ${p.memory.max_keys}`]);
          if (p.memory.rejected || p.memory.displaced || p.memory.untracked) {
            rows.push([`${name} full`, `${p.memory.rejected} refused, ${p.memory.displaced} evicted, ${p.memory.untracked} untracked`, 'bad']);
          }
        }
      }
    } else {
      rows.push(s.ping_error !== undefined
        ? ['latency (PING)', s.ping_error, 'bad']
        : ['latency (PING)', `${s.ping_ms.toFixed(2)} ms`]);
      rows.push(['circuit', s.circuit_open ? 'open' : 'closed', s.circuit_open ? 'bad' : 'good']);
      rows.push(['circuit opened', `${s.circuit_opened} times`]);
      rows.push(['errors', `${s.errors} (${s.timeouts} timeouts)`, s.errors ? 'bad' : '']);
      rows.push(['refused by breaker', String(s.refused)]);
      const fallbacks = Object.values(snap.policies).reduce((n, p) => n + (p.redis ? p.redis.fallbacks : 0), 0);
      rows.push(['fallbacks (on_error)', String(fallbacks), fallbacks ? 'bad' : '']);
      if (s.batch_calls) {
        rows.push(['mean batch', (s.batch_requests / s.batch_calls).toFixed(1)]);
      }
    }
    list($('store'), rows);
  }

  function drawTracker(t) {
    if (!t) {
      list($('tracker'), [['', 'not configured (no [tracker] section)']]);
      return;
    }
    list($('tracker'), [
      ['records', String(t.records)],
      ['waiting batches', String(t.waiting)],
      ['retrying batches', String(t.retrying)],
      ['events', `${t.immediate} immediate, ${t.deferred} deferred, ${t.ignored} ignored`],
      ['delivered', `${t.processed_records} records (${t.processed_events} events)`],
      ['failed rounds', String(t.failed_rounds), t.failed_rounds ? 'bad' : ''],
      ['dead letters', String(t.dead_lettered), t.dead_lettered ? 'bad' : ''],
    ]);
  }

  // Starts and completions per minute over the last QUEUE_RATE_WINDOW_MS, and the ETA
  // pending / completions, as `tidegate queue monitor` shows them.
  function drawQueues(queues, now) {
    $('queues-section').hidden = queues.length === 0;
    const rows = queues.map((q) => {
      const tr = el('tr');
      tr.dataset.queue = q.name;
      if (q.state !== 'ok') {
        tr.append(el('td', {}, q.name),
          el('td', { colspan: 9, class: q.state === 'error' ? 'bad' : 'note' },
            q.state === 'unknown' ? 'no such queue yet (nothing pushed)' : q.error));
        return tr;
      }
      const s = q.stats;
      const samples = queueSamples.get(q.name) || [];
      samples.push({ t: s.server_ms, started: s.started, completed: s.completed });
      while (samples.length > 1 && samples[0].t < s.server_ms - QUEUE_RATE_WINDOW_MS) {
        samples.shift();
      }
      queueSamples.set(q.name, samples);
      const perMin = (key) => {
        const a = samples[0], b = samples[samples.length - 1];
        return b.t > a.t ? Math.max(0, b[key] - a[key]) * 60000 / (b.t - a.t) : null;
      };
      const starts = perMin('started');
      const done = perMin('completed');
      const eta = q.pending === 0 ? 0 : (done > 0 ? q.pending / done * 60000 : null);
      tr.append(...[q.name, s.waiting, s.delayed, s.active, s.failed,
        starts === null ? '-' : starts.toFixed(1), done === null ? '-' : done.toFixed(1),
        s.workers, `${s.busy}/${s.slots}`, eta === null ? '-' : duration(eta)]
        .map((v) => el('td', {}, String(v))));
      return tr;
    });
    $('queues').tBodies[0].replaceChildren(...rows);
  }

  // ---- key lookup -----------------------------------------------------------------

  async function lookup(event) {
    event.preventDefault();
    const policy = $('lookup-policy').value;
    const key = $('lookup-key').value;
    const err = $('lookup-error');
    err.hidden = true;
    try {
      const resp = await call(`/admin/keys/${encodeURIComponent(policy)}/${encodeURIComponent(key)}`);
      if (!resp.ok) {
        throw new Error(await message(resp));
      }
      const d = await resp.json();
      const result = $('lookup-result');
      result.dataset.state = d.next_allowed ? 'admitted' : 'limited';
      list(result, [
        ['key', `${d.key} (${d.policy})`],
        ['state', d.next_allowed ? 'a request now is admitted' : 'limited', d.next_allowed ? 'good' : 'bad'],
        ['remaining', `${d.remaining} of ${d.limit}`],
        ['retry after', d.retry_after_ms === null ? '-' : duration(d.retry_after_ms)],
        ['resets in', duration(d.reset_after_ms)],
        ...(d.tracked === undefined ? [] : [['tracked', d.tracked ? 'yes' : 'no (no state held)']]),
      ]);
    } catch (e) {
      if (e instanceof Refused) {
        refused(e.message);
        return;
      }
      err.hidden = false;
      err.textContent = `Lookup failed: ${e.message}`;
    }
  }

  // ---- top keys and reset ---------------------------------------------------------

  async function refreshTop(event) {
    if (event) {
      event.preventDefault();
    }
    const policy = $('top-policy').value;
    if (!token || !policy || $('board').hidden) {
      return;
    }
    const by = $('top-by').value;
    const err = $('top-error');
    try {
      const resp = await call(`/admin/top?policy=${encodeURIComponent(policy)}&by=${by}`);
      if (!resp.ok) {
        const text = await message(resp);
        throw new Error(resp.status === 404 && text.startsWith('no route')
          ? 'this server does not count top keys (no GET /admin/top)'
          : text);
      }
      const top = await resp.json();
      err.hidden = true;
      $('top-meta').textContent =
        `top ${top.keys.length} of ${top.total} ${by === 'denied' ? 'denials' : 'decisions'} counted` +
        ` (counts within ± ${top.error_bound}, ${top.capacity} keys tracked)`;
      $('top').tBodies[0].replaceChildren(...top.keys.map((k) => {
        const button = el('button', { type: 'button', class: 'reset' }, 'reset');
        button.addEventListener('click', () => reset(policy, k.key));
        const tr = el('tr', {}, el('td', { class: 'key' }, k.key), el('td', {}, String(k.count)),
          el('td', {}, String(k.error)), el('td', {}, button));
        tr.dataset.key = k.key;
        return tr;
      }));
    } catch (e) {
      if (e instanceof Refused) {
        refused(e.message);
        return;
      }
      err.hidden = false;
      err.textContent = `Top keys: ${e.message}`;
    }
  }

  async function reset(policy, key) {
    const msg = $('top-message');
    try {
      const resp = await call(`/admin/keys/${encodeURIComponent(policy)}/${encodeURIComponent(key)}`, { method: 'DELETE' });
      if (!resp.ok) {
        throw new Error(await message(resp));
      }
      const r = await resp.json();
      msg.hidden = false;
      msg.textContent = r.reset
        ? `Reset ${key} (${policy}): its next request starts from a full limit.`
        : `${key} (${policy}) had no state to reset.`;
      msg.dataset.key = key;
      refreshTop();
    } catch (e) {
      if (e instanceof Refused) {
        refused(e.message);
        return;
      }
      msg.hidden = false;
      msg.textContent = `Reset failed: ${e.message}`;
    }
  }

  // ---- small helpers --------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }

  function svg(tag, attrs = {}, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) {
      e.setAttribute(k, String(v));
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  function list(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([k, v, cls]) => [el('dt', {}, k), el('dd', cls ? { class: cls } : {}, v)]));
  }

  function rate(v) {
    return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  }

  function duration(ms) {
    const s = ms / 1000;
    if (s >= 3600) {
      return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, '0')}m`;
    }
    if (s >= 60) {
      return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
    }
    return `${s.toFixed(1)}s`;
  }

  // ---- start ----------------------------------------------------------------------

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('token').value.trim();
    $('token').value = '';
    signIn(value);
  });
  $('logout').addEventListener('click', signOut);
  $('lookup-form').addEventListener('submit', lookup);
  $('top-form').addEventListener('submit', refreshTop);
  $('top-policy').addEventListener('change', () => refreshTop());
  $('top-by').addEventListener('change', () => refreshTop());
  if (token) {
    signIn(token);
  } else {
    showLogin('');
  }
})();
