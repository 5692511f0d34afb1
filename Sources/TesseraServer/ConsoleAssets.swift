// The console's page, script and style, compiled into the binary so `tessera serve` needs no files and the
// browser fetches nothing from anywhere else (no CDN, no web fonts).
//
// The script builds every element with `createElement`/`createElementNS` and puts data in with `textContent`
// or `append(string)` (a text node): no HTML is ever parsed from data, and the policy (`Console.policy`)
// refuses inline scripts and string HTML sinks besides. Links made from data are always `#/…` fragments.

enum ConsoleAssets {
  static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Tessera console</title>
    <link rel="stylesheet" href="/ui/assets/app.css">
    <script src="/ui/assets/app.js" defer></script>
    </head>
    <body>
    <header>
      <span class="brand">Tessera</span>
      <nav id="nav" aria-label="Sections" hidden>
        <a href="#/">Search</a>
        <a href="#/review">Review</a>
        <a href="#/segments">Segments</a>
        <a href="#/pipeline">Pipeline</a>
        <a href="#/deliveries">Deliveries</a>
        <button type="button" id="signout">Sign out</button>
      </nav>
    </header>
    <p id="status" role="status" aria-live="polite"></p>
    <main id="main" tabindex="-1"></main>
    <dialog id="confirm" aria-labelledby="confirm-title">
      <h2 id="confirm-title">Are you sure?</h2>
      <p id="confirm-text"></p>
      <div class="actions">
        <button type="button" id="confirm-yes">Yes</button>
        <button type="button" id="confirm-no" autofocus>Cancel</button>
      </div>
    </dialog>
    </body>
    </html>
    """#

  static let style = #"""
    :root { color-scheme: light; --fg: #1d232b; --muted: #5d6874; --line: #d5dbe1; --accent: #1f5fbf;
      --good: #1e7f45; --bad: #b3261e; --bg: #fbfcfd; }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
      background: var(--bg); }
    header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #17202b;
      color: #fff; }
    header .brand { font-weight: 700; letter-spacing: .04em; }
    nav { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
    nav a { color: #dce6f2; text-decoration: none; padding: .2rem .3rem; border-radius: 3px; }
    nav a[aria-current="page"] { background: #2f3f52; color: #fff; }
    main { padding: 1rem 1.2rem 3rem; max-width: 1200px; }
    main:focus { outline: none; }
    h1 { font-size: 1.35rem; margin: .4rem 0 .8rem; }
    h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
    table { border-collapse: collapse; width: 100%; margin: .3rem 0; }
    th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top;
      overflow-wrap: anywhere; }
    th { color: var(--muted); font-weight: 600; }
    td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
    code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
    button, input, select { font: inherit; }
    button { padding: .25rem .7rem; border: 1px solid #8a96a3; background: #fff; border-radius: 4px;
      cursor: pointer; }
    button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
    button.danger { color: var(--bad); border-color: var(--bad); }
    :focus-visible { outline: 3px solid #f0a000; outline-offset: 2px; }
    input[type=search], input[type=password], input[type=text] { padding: .3rem .5rem; min-width: 22rem;
      border: 1px solid #8a96a3; border-radius: 4px; }
    .muted { color: var(--muted); }
    .error { color: var(--bad); }
    .ok { color: var(--good); }
    #status { margin: 0; padding: .2rem 1.2rem; min-height: 1.6rem; color: var(--muted); }
    .card { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; margin: .7rem 0;
      background: #fff; }
    .row { display: flex; gap: .7rem; align-items: center; flex-wrap: wrap; }
    .actions { display: flex; gap: .6rem; margin-top: .6rem; }
    svg { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
    svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
    svg .edge { stroke: #8795a3; stroke-width: 1.2; fill: none; }
    svg .merge { stroke: var(--accent); stroke-width: 2; }
    svg .node-profile { fill: #dbe8fb; stroke: var(--accent); }
    svg .node-live { fill: var(--accent); }
    svg .node-id { fill: #f4f1e6; stroke: #a38b3c; }
    svg .stage { fill: #eef3f8; stroke: #6c7d90; }
    svg .bar-up { fill: var(--good); }
    svg .bar-down { fill: var(--bad); }
    svg .threshold { stroke: #f0a000; stroke-dasharray: 4 3; }
    dialog { border: 1px solid var(--line); border-radius: 8px; max-width: 32rem; }
    dialog::backdrop { background: rgba(10, 20, 30, .45); }
    pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
    """#

  static let script = #"""
    'use strict';
    (function () {
      let csrf = null;
      const main = document.getElementById('main');
      const statusLine = document.getElementById('status');

      // Elements from data, never from HTML: attributes by name, children as nodes or text.
      function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
          if (v === undefined || v === null || v === false) continue;
          if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
          else if (k === 'class') e.className = v;
          else e.setAttribute(k, v === true ? '' : String(v));
        }
        for (const c of children.flat(Infinity)) {
          if (c === undefined || c === null) continue;
          e.append(c instanceof Node ? c : String(c));
        }
        return e;
      }
      const SVGNS = 'http://www.w3.org/2000/svg';
      function sv(tag, attrs, ...children) {
        const e = document.createElementNS(SVGNS, tag);
        for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
        for (const c of children.flat(Infinity)) {
          if (c === undefined || c === null) continue;
          e.append(c instanceof Node ? c : String(c));
        }
        return e;
      }
      function text(v) {
        if (v === null || v === undefined) return '';
        return typeof v === 'string' ? v : JSON.stringify(v);
      }
      function profileLink(id) {
        return el('a', { href: '#/profile/' + encodeURIComponent(String(id)) }, String(id));
      }
      function table(headers, rows) {
        return el('table', {},
          el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, rows.length ? rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))
            : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'none'))));
      }
      function say(message, kind) {
        statusLine.className = kind || '';
        statusLine.textContent = message || '';
      }

      async function api(method, path, body) {
        const headers = { Accept: 'application/json' };
        const options = { method, headers, credentials: 'same-origin' };
        if (method !== 'GET') {
          headers['X-Tessera-CSRF'] = csrf || '';
          headers['Content-Type'] = 'application/json';
          options.body = JSON.stringify(body || {});
        }
        const response = await fetch(path, options);
        let data = {};
        try { data = await response.json(); } catch (e) { data = {}; }
        if (response.status === 401) { signIn(); throw new Error('sign in with the admin token'); }
        if (!response.ok) throw new Error(data.message || response.statusText);
        return data;
      }

      function confirmDialog(message) {
        const dialog = document.getElementById('confirm');
        document.getElementById('confirm-text').textContent = message;
        return new Promise((resolve) => {
          const yes = document.getElementById('confirm-yes');
          const no = document.getElementById('confirm-no');
          const done = (answer) => {
            yes.removeEventListener('click', onYes);
            no.removeEventListener('click', onNo);
            dialog.removeEventListener('cancel', onNo);
            if (dialog.open) dialog.close();
            resolve(answer);
          };
          const onYes = () => done(true);
          const onNo = () => done(false);
          yes.addEventListener('click', onYes);
          no.addEventListener('click', onNo);
          dialog.addEventListener('cancel', onNo);
          dialog.showModal();
          no.focus();
        });
      }

      function show(title, ...content) {
        main.replaceChildren(el('h1', {}, title), ...content);
        main.focus();
      }

      // Sign in: the token goes in a POST body and comes back as an HttpOnly cookie.
      function signIn() {
        csrf = null;
        document.getElementById('nav').hidden = true;
        const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', 'aria-label': 'Admin token' });
        const form = el('form', {
          id: 'signin',
          onsubmit: async (ev) => {
            ev.preventDefault();
            try {
              const r = await fetch('/ui/session', {
                method: 'POST', credentials: 'same-origin',
                headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
                body: JSON.stringify({ token: input.value }),
              });
              const data = await r.json();
              if (!r.ok) throw new Error(data.message || 'refused');
              csrf = data.csrf;
              input.value = '';
              document.getElementById('nav').hidden = false;
              route();
            } catch (e) { say(e.message, 'error'); }
          },
        }, el('label', { for: 'token' }, 'Admin token (TESSERA_ADMIN_TOKEN) '), input, ' ',
          el('button', { type: 'submit', class: 'primary' }, 'Sign in'));
        show('Sign in', form);
        input.focus();
      }

      // ---- search ----
      function searchView(initial) {
        const input = el('input', {
          type: 'search', id: 'search', value: initial || '', 'aria-label': 'Identifier or profile id',
          placeholder: 'email:ada@example.com, user_id:42, phone:+14155550123 or prf_12',
        });
        const form = el('form', {
          id: 'search-form',
          onsubmit: async (ev) => {
            ev.preventDefault();
            const q = input.value.trim();
            if (!q) return;
            try {
              const p = /^prf_\d+$/.test(q) ? await api('GET', '/v1/profiles/' + encodeURIComponent(q))
                : await api('GET', '/v1/profiles?identifier=' + encodeURIComponent(q));
              location.hash = '#/profile/' + encodeURIComponent(p.id);
            } catch (e) { say(e.message, 'error'); }
          },
        }, input, ' ', el('button', { type: 'submit', class: 'primary' }, 'Find'));
        show('Find a person', form,
          el('p', { class: 'muted' }, 'Any identifier as kind:value, or a profile id. Press / to come back here.'));
        input.focus();
      }

      // ---- profile ----
      async function profileView(id) {
        const p = await api('GET', '/v1/profiles/' + encodeURIComponent(id));
        if (p.id !== id) { location.replace('#/profile/' + encodeURIComponent(p.id)); return; }
        const traits = Object.entries(p.traits || {}).sort((a, b) => a[0].localeCompare(b[0]));
        const computed = Object.entries(p.computed || {}).sort((a, b) => a[0].localeCompare(b[0]));
        const waterfall = el('div', { id: 'explanation' });
        const merges = (p.merges || []).map((m) => [
          text(m.at), profileLink(m.absorbed), profileLink(m.survivor), m.rule,
          m.evidence.length ? m.evidence.join(' + ') : 'probability ' + Number(m.score).toFixed(6),
          el('span', { class: 'row' },
            el('button', { type: 'button', class: 'why', onclick: () => explainMerge(p.id, m.absorbed, waterfall) },
              'Why'),
            m.survivor === p.id || (p.aliases || []).includes(m.survivor)
              ? el('button', { type: 'button', class: 'danger unmerge', 'data-absorbed': m.absorbed,
                onclick: () => unmerge(p.id, m) }, 'Unmerge') : null),
        ]);
        show('Profile ' + p.id,
          (p.aliases || []).length ? el('p', { id: 'aliases' }, 'Absorbed: ', p.aliases.map((a, i) => [i ? ', ' : '', a])) : null,
          el('section', { id: 'identifiers' }, el('h2', {}, 'Identifiers'),
            table(['kind', 'value', 'last seen'], (p.identifiers || []).map((i) => [i.kind, i.value, text(i.last_seen)]))),
          el('section', { id: 'traits' }, el('h2', {}, 'Traits'),
            table(['trait', 'value', 'winning source', 'event', 'at', 'why'],
              traits.map(([k, t]) => [k, text(t.value), t.source, t.event_id, text(t.timestamp), text(t.why)]))),
          el('section', { id: 'computed' }, el('h2', {}, 'Computed traits'),
            table(['trait', 'value'], computed.map(([k, v]) => [k, text(v)]))),
          el('section', { id: 'segments' }, el('h2', {}, 'Segments'),
            table(['segment', 'since'], (p.segments || []).map((s) => [
              el('a', { href: '#/segments/' + encodeURIComponent(s.segment) }, s.segment), text(s.since)]))),
          el('section', { id: 'graph' }, el('h2', {}, 'Identity graph'), identityGraph(p)),
          el('section', { id: 'merges' }, el('h2', {}, 'Merge history'),
            table(['at', 'absorbed', 'into', 'rule', 'on', ''], merges), waterfall),
          el('section', { id: 'conflicts' }, el('h2', {}, 'Refused merges'),
            table(['at', 'refused by', 'kind', 'with', 'identifiers', 'event'], (p.conflicts || []).map((c) => [
              text(c.at), c.reason, c.kind, c.other ? profileLink(c.other) : '', (c.identifiers || []).join(', '),
              c.event_id]))),
          el('section', { id: 'timeline' }, el('h2', {}, 'Timeline'), await timeline(p.id)));
      }

      // Identifiers and absorbed profiles around the live profile; merges as edges labelled with what linked them.
      function identityGraph(p) {
        const W = 760, H = 520, cx = W / 2, cy = H / 2;
        const profiles = new Set([p.id]);
        for (const m of p.merges || []) { profiles.add(m.absorbed); profiles.add(m.survivor); }
        const others = [...profiles].filter((x) => x !== p.id);
        const pos = new Map([[p.id, [cx, cy]]]);
        others.forEach((x, i) => {
          const a = (2 * Math.PI * i) / Math.max(1, others.length) - Math.PI / 2;
          pos.set(x, [cx + 150 * Math.cos(a), cy + 110 * Math.sin(a)]);
        });
        const ids = (p.identifiers || []).slice(0, 40);
        const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
          'aria-labelledby': 'graph-title', id: 'identity-graph' },
          sv('title', { id: 'graph-title' }, `Identity graph of ${p.id}`));
        const edges = sv('g', {});
        const nodes = sv('g', {});
        svg.append(edges, nodes);
        ids.forEach((ident, i) => {
          const a = (2 * Math.PI * i) / Math.max(1, ids.length) - Math.PI / 2;
          const x = cx + 320 * Math.cos(a), y = cy + 220 * Math.sin(a);
          edges.append(sv('line', { class: 'edge', x1: cx, y1: cy, x2: x, y2: y }));
          const label = `${ident.kind}:${ident.value}`;
          nodes.append(sv('g', { class: 'identifier' },
            sv('title', {}, `${label} (last seen ${text(ident.last_seen)})`),
            sv('rect', { class: 'node-id', x: x - 4, y: y - 4, width: 8, height: 8 }),
            sv('text', { x: x + (x < cx ? -8 : 8), y: y + 4, 'text-anchor': x < cx ? 'end' : 'start' },
              label.length > 38 ? label.slice(0, 37) + '…' : label)));
        });
        for (const m of p.merges || []) {
          const [x1, y1] = pos.get(m.absorbed), [x2, y2] = pos.get(m.survivor);
          const label = m.evidence.length ? `${m.rule}: ${m.evidence.join(' + ')}`
            : `${m.rule}: p=${Number(m.score).toFixed(4)}`;
          edges.append(sv('g', { class: 'merge-edge' },
            sv('line', { class: 'edge merge', x1, y1, x2, y2 }),
            sv('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, label)));
        }
        for (const [x, [px, py]] of pos) {
          nodes.append(sv('g', { class: 'profile-node' },
            sv('title', {}, x === p.id ? `${x} (live)` : `${x} (absorbed)`),
            sv('circle', { class: x === p.id ? 'node-live' : 'node-profile', cx: px, cy: py, r: x === p.id ? 16 : 11 }),
            sv('text', { x: px, y: py + (x === p.id ? 30 : 24), 'text-anchor': 'middle' }, x)));
        }
        const more = (p.identifiers || []).length - ids.length;
        return el('figure', {}, svg, more > 0 ? el('figcaption', {}, `and ${more} more identifiers`) : null);
      }

      async function explainMerge(live, absorbed, into) {
        try {
          const e = await api('GET', `/v1/profiles/${encodeURIComponent(live)}/merges/${encodeURIComponent(absorbed)}/explanation`);
          const parts = [el('h2', {}, `Why ${e.absorbed} merged into ${e.survivor}`)];
          if (e.evidence.length) parts.push(el('p', {}, `Rule ${e.rule} linked them on ${e.evidence.join(' and ')}.`));
          if (e.explanation) parts.push(waterfallChart(e.explanation, e.thresholds), comparisonTable(e.explanation));
          into.replaceChildren(...parts);
          into.querySelector('h2').setAttribute('tabindex', '-1');
          into.querySelector('h2').focus();
        } catch (err) { say(err.message, 'error'); }
      }

      function weightOf(p) { return Math.log2(p / (1 - p)); }

      // Each comparison's weight as a bar from the running total before it to the one after.
      function waterfallChart(x, thresholds) {
        const rows = [{ field: 'prior', from: 0, to: x.prior_weight }];
        for (const c of x.comparisons) rows.push({ field: c.field, from: c.running_total - c.weight, to: c.running_total, level: c.level });
        rows.push({ field: 'match weight', from: 0, to: x.match_weight, total: true });
        const marks = thresholds ? [['merge', weightOf(thresholds.merge)], ['review', weightOf(thresholds.review)]] : [];
        const values = rows.flatMap((r) => [r.from, r.to]).concat(marks.map((m) => m[1]), [0]);
        const lo = Math.min(...values) - 1, hi = Math.max(...values) + 1;
        const W = 760, left = 150, right = 20, rowH = 24, H = rows.length * rowH + 40;
        const X = (v) => left + ((v - lo) / (hi - lo)) * (W - left - right);
        const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'waterfall',
          'aria-label': `Match weight ${x.match_weight.toFixed(2)}, probability ${x.match_probability.toFixed(6)}` });
        svg.append(sv('line', { class: 'edge', x1: X(0), x2: X(0), y1: 10, y2: H - 20 }));
        rows.forEach((r, i) => {
          const y = 12 + i * rowH;
          const up = r.to >= r.from;
          svg.append(
            sv('text', { x: left - 8, y: y + 13, 'text-anchor': 'end' }, r.level ? `${r.field} (${r.level})` : r.field),
            sv('rect', { class: up ? 'bar-up' : 'bar-down', x: Math.min(X(r.from), X(r.to)), y: y + 2,
              width: Math.max(1, Math.abs(X(r.to) - X(r.from))), height: rowH - 8 }),
            sv('text', { x: Math.max(X(r.from), X(r.to)) + 4, y: y + 13 },
              (r.total ? '' : (up ? '+' : '')) + (r.total ? r.to : r.to - r.from).toFixed(2)));
        });
        for (const [name, w] of marks) {
          svg.append(sv('line', { class: 'threshold', x1: X(w), x2: X(w), y1: 6, y2: H - 18 }),
            sv('text', { x: X(w), y: H - 6, 'text-anchor': 'middle' }, name));
        }
        return el('figure', {}, svg, el('figcaption', {},
          `match weight ${x.match_weight.toFixed(2)} → probability ${x.match_probability.toFixed(6)}: ${x.decision}`));
      }

      function comparisonTable(x) {
        const f = (v) => (v === null || v === undefined ? '' : Number(v).toPrecision(4));
        return table(['field', x.left, x.right, 'level', 'm', 'u', 'weight', 'running total'],
          x.comparisons.map((c) => [c.field, text(c.left ?? '∅'), text(c.right ?? '∅'), c.level, f(c.m), f(c.u),
            (c.weight >= 0 ? '+' : '') + c.weight.toFixed(2), c.running_total.toFixed(2)]));
      }

      async function unmerge(live, m) {
        const ok = await confirmDialog(`Undo the merge of ${m.absorbed} into ${m.survivor}? The store is re-resolved ` +
          'and the two profiles come back apart with their own events.');
        if (!ok) return;
        try {
          const r = await api('POST', `/v1/profiles/${encodeURIComponent(live)}/unmerge`, { merge: m.absorbed });
          say(`Unmerged ${r.unmerged} from ${r.from}.`, 'ok');
          await profileView(live);
        } catch (e) { say(e.message, 'error'); }
      }

      // The timeline: newest first, a page at a time, filtered by source and type.
      async function timeline(id) {
        const box = el('div', {});
        const source = el('input', { type: 'text', id: 'filter-source', 'aria-label': 'Source', placeholder: 'any source' });
        const type = el('select', { id: 'filter-type', 'aria-label': 'Type' },
          ['', 'track', 'identify', 'page', 'screen', 'group', 'alias', 'record'].map((t) => el('option', { value: t }, t || 'any type')));
        const cursors = [''];
        async function load() {
          const q = new URLSearchParams({ limit: '25' });
          if (cursors[cursors.length - 1]) q.set('cursor', cursors[cursors.length - 1]);
          if (source.value) q.set('source', source.value);
          if (type.value) q.set('type', type.value);
          const page = await api('GET', `/v1/profiles/${encodeURIComponent(id)}/events?${q}`);
          const rows = page.items.map((e) => [text(e.timestamp), e.source, e.type, text(e.name),
            el('pre', { class: 'mono' }, text(e.properties)), el('pre', { class: 'mono' }, text(e.traits))]);
          const older = el('button', { type: 'button', id: 'older', disabled: !page.next_cursor,
            onclick: () => { cursors.push(page.next_cursor); load(); } }, 'Older');
          const newer = el('button', { type: 'button', id: 'newer', disabled: cursors.length < 2,
            onclick: () => { cursors.pop(); load(); } }, 'Newer');
          box.replaceChildren(table(['at', 'source', 'type', 'name', 'properties', 'traits'], rows),
            el('div', { class: 'row' }, newer, older));
        }
        const filter = el('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); cursors.length = 1; load(); } },
          source, type, el('button', { type: 'submit' }, 'Filter'));
        await load();
        return el('div', {}, filter, box);
      }

      // ---- review ----
      // Cards a page: each compares two profiles field by field (six store reads on the server), so a page of 20
      // keeps the server's time well under 100 ms; More brings the next 20.
      const REVIEW_PAGE = 20;
      async function reviewView() {
        const order = sessionStorage.getItem('review-order') || 'desc';
        const r = await api('GET', '/v1/review?limit=' + REVIEW_PAGE + '&sort=' + order);
        const sort = el('select', { id: 'review-sort', 'aria-label': 'Order',
          onchange: () => { sessionStorage.setItem('review-order', sort.value); reviewView(); } },
          el('option', { value: 'desc', selected: order === 'desc' }, 'most probable first'),
          el('option', { value: 'asc', selected: order === 'asc' }, 'least probable first'));
        const sliders = r.rules.map((rule) => thresholdSlider(rule));
        const card = (l) => el('article', { class: 'card link', 'data-link': l.id },
          el('div', { class: 'row' }, el('strong', {}, `Link ${l.id}`), `rule ${l.rule}`,
            `probability ${Number(l.probability).toFixed(6)}`, `weight ${Number(l.match_weight).toFixed(2)}`,
            profileLink(l.profile), '↔', profileLink(l.candidate)),
          l.comparison ? comparisonTable(l.comparison) : el('p', { class: 'muted' }, 'one side is gone'),
          el('div', { class: 'actions' },
            el('button', { type: 'button', class: 'primary confirm', onclick: () => decide(l, 'confirm') }, 'Confirm: same person'),
            el('button', { type: 'button', class: 'reject', onclick: () => decide(l, 'reject') }, 'Reject: different people')));
        const cards = el('div', { id: 'review-cards' }, ...r.items.map(card));
        // The next page from where this one ended (the server reads a page from its index, never the whole queue).
        let cursor = r.next_cursor;
        const more = el('button', { type: 'button', id: 'review-more', hidden: !cursor, onclick: async () => {
          try {
            const next = await api('GET', `/v1/review?limit=${REVIEW_PAGE}&sort=${order}&cursor=${encodeURIComponent(cursor)}`);
            cards.append(...next.items.map(card));
            cursor = next.next_cursor;
            more.hidden = !cursor;
          } catch (e) { say(e.message, 'error'); }
        } }, 'More');
        show('Review queue', el('p', {}, `${r.total} candidate link${r.total === 1 ? '' : 's'} between review and merge. `, sort),
          ...sliders, ...(r.items.length ? [cards, more] : [el('p', { class: 'muted', id: 'review-empty' }, 'Nothing to review.')]));
      }

      // How many stored links would merge at another threshold (what `tessera tune` counts against the current one),
      // from the server's histogram: per bucket of width 1/buckets (the slider's step), how many links fall in it.
      function thresholdSlider(rule) {
        const out = el('output', { id: `at-${rule.name}` });
        const input = el('input', { type: 'range', min: '0.5', max: '0.9999', step: '0.0001', value: String(rule.merge),
          id: `threshold-${rule.name}`, 'aria-label': `Merge threshold of ${rule.name}` });
        const buckets = rule.histogram.buckets;
        const atLeast = (t) => {
          const k = Math.ceil(t * buckets - 1e-6);
          return rule.histogram.counts.reduce((n, [b, c]) => (b >= k ? n + c : n), 0);
        };
        const now = atLeast(rule.merge);
        function update() {
          const t = Number(input.value);
          const n = atLeast(t);
          const d = n - now;
          out.textContent = `At merge ${t.toFixed(4)}: ${n} of ${rule.links} links would merge ` +
            `(${d === 0 ? 'no change' : (d > 0 ? d + ' more' : -d + ' fewer')} than at the current ${rule.merge}).`;
        }
        input.addEventListener('input', update);
        update();
        return el('div', { class: 'card' }, el('label', { for: `threshold-${rule.name}` }, `Rule ${rule.name}: merge threshold `),
          input, ' ', out);
      }

      async function decide(link, what) {
        try {
          const r = await api('POST', `/v1/review/${link.id}/${what}`, {});
          say(what === 'confirm' ? `Link ${link.id} confirmed: ${r.merges} merge${r.merges === 1 ? '' : 's'}, profile ${r.profile}.`
            : `Link ${link.id} rejected.`, 'ok');
          await reviewView();
        } catch (e) { say(e.message, 'error'); }
      }

      // ---- segments ----
      async function segmentsView(name) {
        const r = await api('GET', '/v1/segments');
        const list = table(['segment', 'description', 'members'], r.items.map((s) => [
          el('a', { href: '#/segments/' + encodeURIComponent(s.name) }, s.name), text(s.description), String(s.members)]));
        if (!name) { show('Segments', list); return; }
        const box = el('div', {});
        let cursor = '';
        async function members() {
          const q = new URLSearchParams({ limit: '50' });
          if (cursor) q.set('cursor', cursor);
          const m = await api('GET', `/v1/segments/${encodeURIComponent(name)}/members?${q}`);
          const next = el('button', { type: 'button', disabled: !m.next_cursor, onclick: () => { cursor = m.next_cursor; members(); } }, 'More');
          box.replaceChildren(el('p', {}, `${m.total} members`),
            table(['profile', 'since'], m.items.map((x) => [profileLink(x.profile_id), text(x.since)])), next);
        }
        await members();
        const c = await api('GET', `/v1/segments/${encodeURIComponent(name)}/changes?limit=200`);
        show('Segment ' + name, list, el('h2', {}, 'Members'), box, el('h2', {}, 'Entered and exited'),
          table(['at', 'profile', 'change', 'what it read'], c.items.map((x) => [text(x.at), profileLink(x.profile_id),
            x.entered ? 'entered' : (x.merged_into ? `exited (merged into ${x.merged_into})` : 'exited'), text(x.values)])));
      }

      // ---- pipeline ----
      async function pipelineView() {
        const g = await api('GET', '/v1/pipeline');
        const depth = new Map(g.stages.map((s) => [s.id, 0]));
        for (let i = 0; i < g.stages.length; i++) {
          for (const e of g.edges) depth.set(e.to, Math.max(depth.get(e.to) || 0, (depth.get(e.from) || 0) + 1));
        }
        const columns = [];
        for (const s of g.stages) (columns[depth.get(s.id)] = columns[depth.get(s.id)] || []).push(s);
        const bw = 170, bh = 58, gx = 60, gy = 24;
        const W = columns.length * (bw + gx) + 20;
        const H = Math.max(...columns.map((c) => c.length)) * (bh + gy) + 30;
        const pos = new Map();
        columns.forEach((col, i) => col.forEach((s, j) => pos.set(s.id, [10 + i * (bw + gx), 15 + j * (bh + gy)])));
        const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', id: 'pipeline-graph',
          'aria-label': `Stage graph of ${g.name}` });
        for (const e of g.edges) {
          const [x1, y1] = pos.get(e.from), [x2, y2] = pos.get(e.to);
          svg.append(sv('g', { class: 'plan-edge' },
            sv('line', { class: 'edge', x1: x1 + bw, y1: y1 + bh / 2, x2, y2: y2 + bh / 2 }),
            sv('text', { x: (x1 + bw + x2) / 2, y: (y1 + y2 + bh) / 2 - 4, 'text-anchor': 'middle' }, e.carries)));
        }
        for (const s of g.stages) {
          const [x, y] = pos.get(s.id);
          const f = s.figures;
          svg.append(sv('g', { class: 'plan-stage' }, sv('title', {}, s.label),
            sv('rect', { class: 'stage', x, y, width: bw, height: bh, rx: 5 }),
            sv('text', { x: x + 6, y: y + 15 }, s.label.length > 26 ? s.label.slice(0, 25) + '…' : s.label),
            sv('text', { x: x + 6, y: y + 31 }, s.parallelism),
            sv('text', { x: x + 6, y: y + 47 }, f ? `${f.items_out} out, ${f.queued_items} queued, ${(f.busy * 100).toFixed(0)}% busy` : '')));
        }
        show('Pipeline ' + g.name, el('p', {}, el('button', { type: 'button', onclick: pipelineView }, 'Refresh figures')), svg,
          table(['stage', 'kind', 'parallelism', 'items out', 'queued', 'busy'], g.stages.map((s) => [s.label, s.kind, s.parallelism,
            s.figures ? String(s.figures.items_out) : '', s.figures ? String(s.figures.queued_items) : '',
            s.figures ? (s.figures.busy * 100).toFixed(1) + '%' : ''])));
      }

      // ---- deliveries ----
      async function deliveriesView() {
        const d = await api('GET', '/v1/deliveries');
        const names = Object.keys(d.destinations).sort();
        const requeue = async (body, what) => {
          try {
            const r = await api('POST', '/v1/deliveries/requeue', body);
            say(`Re-queued ${r.requeued} ${what}.`, 'ok');
            await deliveriesView();
          } catch (e) { say(e.message, 'error'); }
        };
        const batchRow = (b) => [String(b.id), b.destination, String(b.items), String(b.attempts),
          b.last_status === null ? 'error' : 'HTTP ' + b.last_status, el('pre', { class: 'mono' }, text(b.last_error)),
          b.status === 'dead' ? el('button', { type: 'button', class: 'requeue', 'data-batch': b.id,
            onclick: () => requeue({ batch: b.id }, `batch ${b.id}`) }, 'Re-queue') : text(b.next_attempt_at)];
        show('Deliveries',
          table(['destination', 'queued', 'pending', 'failing', 'sending', 'dead-lettered', 'delivered', ''], names.map((n) => {
            const s = d.destinations[n];
            return [n, String(s.queued), String(s.pending), String(s.failing), String(s.sending),
              `${s.dead} (${s.dead_items} changes)`, `${s.delivered} (${s.delivered_items} changes)`,
              s.dead ? el('button', { type: 'button', onclick: () => requeue({ destination: n }, `dead letters of ${n}`) },
                'Re-queue all') : ''];
          })),
          el('h2', {}, 'Failing (will be retried)'),
          table(['batch', 'destination', 'changes', 'attempts', 'last response', 'error', 'next attempt'], d.failing.map(batchRow)),
          el('h2', {}, 'Dead letters'),
          table(['batch', 'destination', 'changes', 'attempts', 'last response', 'error', ''], d.dead_letters.map(batchRow)));
      }

      // ---- routing ----
      async function route() {
        if (!csrf) return signIn();
        const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
        for (const a of document.querySelectorAll('nav a')) {
          const current = a.getAttribute('href') === '#/' + (parts[0] === 'profile' ? '' : parts[0]);
          if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
        }
        try {
          switch (parts[0]) {
            case 'profile': await profileView(parts[1]); break;
            case 'review': await reviewView(); break;
            case 'segments': await segmentsView(parts[1]); break;
            case 'pipeline': await pipelineView(); break;
            case 'deliveries': await deliveriesView(); break;
            default: searchView();
          }
          document.body.dataset.view = parts[0] || 'search';
        } catch (e) {
          say(e.message, 'error');
        }
      }

      document.getElementById('signout').addEventListener('click', async () => {
        try { await api('DELETE', '/ui/session'); } catch (e) { /* signed out either way */ }
        signIn();
      });
      document.addEventListener('keydown', (ev) => {
        const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
        if (ev.key === '/' && !typing) { ev.preventDefault(); location.hash = '#/'; searchView(); }
      });
      window.addEventListener('hashchange', () => { say(''); route(); });
      fetch('/ui/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then((r) => (r.ok ? r.json() : null))
        .then((s) => {
          if (s && s.csrf) { csrf = s.csrf; document.getElementById('nav').hidden = false; }
          route();
        }, () => route());
    })();
    """#
}
