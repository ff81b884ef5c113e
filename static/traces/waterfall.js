// The trace page's waterfall: spans as bars on one time axis, nesting indented, events as
// markers on their span's row, detail on click, collapsible subtrees. Only the rows in view are
// in the DOM (a 10,000-span trace stays smooth), and an open trace refreshes live.
(function () {
  "use strict";
  const ROW = 26;        // px per row; keep in sync with .wf-row in traces.css
  const OVERSCAN = 8;    // rows rendered above and below the visible ones

  const root = document.getElementById("waterfall");
  if (!root) return;
  const viewport = document.getElementById("waterfall-viewport");
  const spacer = document.getElementById("waterfall-spacer");
  const axis = document.getElementById("waterfall-axis");
  const empty = document.getElementById("waterfall-empty");
  const detail = document.getElementById("span-detail");
  const count = document.getElementById("waterfall-count");
  const perSecond = parseFloat(root.dataset.unitsPerSecond) || 1;

  const MAX_INDENT = 12;
  let rows = [];          // every span (and the trace) in tree order: {node, depth, key, parent}
  let visible = [];       // rows not hidden by a collapsed ancestor
  let collapsed = new Set();
  let selectedKey = null;
  let t0 = 0, t1 = 1;
  let rendered = new Map(); // row index -> element
  let status = root.dataset.open === "true" ? "open" : "stored";

  function human(duration) {
    if (duration === null || duration === undefined) return "—";
    let s = duration / perSecond;
    if (s < 0) return "-" + human(-duration);
    if (s === 0) return "0 s";
    if (s < 1e-3) return Math.round(s * 1e6) + " µs";
    if (s < 1) return +(s * 1e3).toPrecision(3) + " ms";
    if (s < 60) return +s.toPrecision(3) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    // As traces/timeunits.human_duration writes it, so the page says the same before and after
    // its first refresh.
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  // The moment a timestamp stands for, read as traces/timeunits.as_datetime reads it; null for a
  // client clock that counts from its own start rather than from 1970.
  function moment(t) {
    if (t === null || t === undefined) return null;
    const seconds = t / perSecond;
    // Whole microseconds first, then milliseconds cut off, as Python's datetime reads it: the
    // page's "Started" and the span detail then agree to the millisecond.
    return seconds < 946684800 ? null : new Date(Math.floor(Math.round(seconds * 1e6) / 1000));
  }

  // "+12.3 ms" from the trace's start, then the moment itself where the clock is Unix time.
  function when(t) {
    const parts = ["+" + human(t - t0)];
    const date = moment(t);
    if (date) parts.push(" (", window.Times.element(date, {ms: true}), ")");
    return parts;
  }

  function flatten(tree) {
    const out = [];
    // Iterative: a 10,000-deep chain must not overflow the stack.
    const stack = [{node: tree, depth: 0, key: "t", parent: -1}];
    while (stack.length) {
      const item = stack.pop();
      const index = out.length;
      const spans = [];
      item.events = [];
      for (const child of item.node.children || []) {
        if (child.type === "EVENT") item.events.push(child); else spans.push(child);
      }
      item.childCount = spans.length;
      out.push(item);
      for (let i = spans.length - 1; i >= 0; i--) {
        stack.push({node: spans[i], depth: item.depth + 1, key: item.key + "." + i, parent: index});
      }
    }
    return out;
  }

  function computeVisible() {
    visible = [];
    let hideBelow = Infinity;  // depth under a collapsed row
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (row.depth > hideBelow) continue;
      hideBelow = collapsed.has(row.key) ? row.depth : Infinity;
      visible.push(i);
    }
    spacer.style.height = visible.length * ROW + "px";
    count.textContent = (rows.length - 1) + " spans" +
      (visible.length < rows.length ? " · " + (visible.length - 1) + " shown" : "");
  }

  function pct(t) { return ((t - t0) / (t1 - t0 || 1)) * 100; }

  function buildRow(index) {
    const row = rows[index];
    const node = row.node;
    const el = document.createElement("div");
    el.className = "wf-row" + (row.key === selectedKey ? " selected" : "") +
      (node.open ? " open" : "") + (node.type === "TRACE" ? " wf-trace" : "");
    el.dataset.key = row.key;
    el.setAttribute("role", "row");

    const label = document.createElement("div");
    label.className = "wf-label";
    // Indent up to MAX_INDENT levels; deeper rows say their depth, so names stay in view.
    label.style.paddingLeft = 6 + Math.min(row.depth, MAX_INDENT) * 14 + "px";
    if (row.childCount) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "wf-toggle";
      toggle.textContent = collapsed.has(row.key) ? "▸" : "▾";
      toggle.setAttribute("aria-label", (collapsed.has(row.key) ? "Expand " : "Collapse ") + (node.name || "trace"));
      toggle.addEventListener("click", (event) => { event.stopPropagation(); toggleRow(row.key); });
      label.appendChild(toggle);
    } else {
      const pad = document.createElement("span");
      pad.className = "wf-toggle-pad";
      label.appendChild(pad);
    }
    if (row.depth > MAX_INDENT) {
      const depth = document.createElement("span");
      depth.className = "wf-depth";
      depth.textContent = row.depth;
      depth.title = "nested " + row.depth + " levels deep";
      label.appendChild(depth);
    }
    const name = document.createElement("span");
    name.className = "wf-name";
    name.textContent = node.type === "TRACE" ? "Trace" : node.name;
    name.title = name.textContent;
    label.appendChild(name);
    el.appendChild(label);

    const lane = document.createElement("div");
    lane.className = "wf-lane";
    const bar = document.createElement("div");
    bar.className = "wf-bar depth-" + (row.depth % 6);
    const left = pct(node.start);
    bar.style.left = left + "%";
    bar.style.width = Math.max(pct(node.end) - left, 0.15) + "%";
    if (pct(node.end) - left > 25) bar.classList.add("label-inside");
    else if (pct(node.end) > 80) bar.classList.add("label-left");
    const text = document.createElement("span");
    text.className = "wf-duration";
    text.textContent = human(node.end - node.start) + (node.open ? " …" : "");
    bar.appendChild(text);
    lane.appendChild(bar);
    for (const ev of row.events) {
      const marker = document.createElement("button");
      marker.type = "button";
      marker.className = "wf-event";
      marker.style.left = pct(ev.timestamp) + "%";
      marker.title = ev.name + " at +" + human(ev.timestamp - t0);
      marker.setAttribute("aria-label", "Event " + ev.name);
      marker.addEventListener("click", (event) => { event.stopPropagation(); showEvent(ev, row); });
      lane.appendChild(marker);
    }
    el.appendChild(lane);
    el.addEventListener("click", () => select(row.key));
    return el;
  }

  function render(force) {
    const height = viewport.clientHeight;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(visible.length - 1, Math.ceil((viewport.scrollTop + height) / ROW) + OVERSCAN);
    if (force) { rendered.forEach((el) => el.remove()); rendered.clear(); }
    rendered.forEach((el, position) => {
      if (position < first || position > last) { el.remove(); rendered.delete(position); }
    });
    for (let position = first; position <= last; position++) {
      if (rendered.has(position)) continue;
      const el = buildRow(visible[position]);
      el.style.top = position * ROW + "px";
      spacer.appendChild(el);
      rendered.set(position, el);
    }
  }

  let frameRequested = false;
  viewport.addEventListener("scroll", () => {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => { frameRequested = false; render(false); });
  });
  window.addEventListener("resize", () => render(false));

  function toggleRow(key) {
    if (collapsed.has(key)) collapsed.delete(key); else collapsed.add(key);
    computeVisible();
    render(true);
  }

  function fact(label, value) {
    const dt = document.createElement("dt"); dt.textContent = label;
    const dd = document.createElement("dd");
    if (Array.isArray(value)) dd.append(...value); else dd.textContent = value;
    const div = document.createElement("div"); div.append(dt, dd);
    return div;
  }

  function select(key) {
    selectedKey = key;
    const row = rows.find((r) => r.key === key);
    if (!row) return;
    const node = row.node;
    detail.replaceChildren();
    const title = document.createElement("h2");
    title.textContent = node.type === "TRACE" ? "Trace" : node.name;
    const list = document.createElement("dl");
    list.className = "trace-facts";
    list.append(
      fact("Start", when(node.start)),
      fact(node.open ? "Seen until" : "End", when(node.end)),
      fact("Duration", human(node.end - node.start) + (node.open ? " (still open)" : "")),
      fact("Child spans", String(row.childCount)), fact("Events", String(row.events.length)),
    );
    if (node.service) list.append(fact("Service", node.service));
    detail.append(title, list);
    if (row.events.length) {
      const events = document.createElement("ul");
      events.className = "wf-event-list";
      for (const ev of row.events.slice(0, 50)) {
        const li = document.createElement("li");
        li.textContent = ev.name + " at +" + human(ev.timestamp - t0);
        events.appendChild(li);
      }
      detail.appendChild(events);
    }
    detail.hidden = false;
    render(true);
  }

  function showEvent(ev, row) {
    selectedKey = row.key;
    detail.replaceChildren();
    const title = document.createElement("h2");
    title.textContent = "Event " + ev.name;
    const list = document.createElement("dl");
    list.className = "trace-facts";
    list.append(fact("At", when(ev.timestamp)),
                fact("In", row.node.type === "TRACE" ? "the trace" : row.node.name));
    detail.append(title, list);
    detail.hidden = false;
    render(true);
  }

  function drawAxis() {
    axis.replaceChildren();
    for (let i = 0; i <= 4; i++) {
      const tick = document.createElement("span");
      tick.className = "wf-tick";
      tick.style.left = i * 25 + "%";
      tick.textContent = human(((t1 - t0) * i) / 4);
      axis.appendChild(tick);
    }
  }

  function show(body) {
    const tree = body.trace;
    // The root span's name: while the trace is open, a later frame can bring an earlier span.
    document.getElementById("trace-name").textContent = body.name || "(unnamed)";
    document.getElementById("trace-status").textContent = body.status;
    document.getElementById("trace-status").className = "badge status-" + body.status;
    document.getElementById("trace-spans").textContent = body.span_count;
    document.getElementById("trace-events").textContent = body.event_count;
    document.getElementById("trace-duration").textContent = human(body.duration);
    const missing = document.getElementById("trace-missing");
    missing.hidden = !body.missing.length;
    document.getElementById("trace-missing-text").textContent = body.missing.join(", ");

    t0 = tree.start === null ? 0 : tree.start;
    t1 = tree.end === null ? 1 : tree.end;
    rows = tree.start === null ? [] : flatten(tree);
    empty.hidden = rows.length > 1 || (rows.length === 1 && rows[0].events.length > 0);
    computeVisible();
    drawAxis();
    render(true);
    if (selectedKey) select(selectedKey);
  }

  let loading = null, again = false;
  function refresh() {
    if (loading) { again = true; return; }
    loading = fetch(root.dataset.api, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then((response) => response.ok ? response.json() : Promise.reject(response.status))
      .then((body) => {
        show(body);
        if (body.status !== "open" && live) { live.close(); live = null; setStoredIndicator(); }
      })
      .catch(() => {})
      .finally(() => {
        loading = null;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }

  function setStoredIndicator() {
    document.querySelectorAll(".live-indicator").forEach((el) => { el.hidden = true; });
  }

  document.getElementById("expand-all").addEventListener("click", () => {
    collapsed.clear(); computeVisible(); render(true);
  });
  document.getElementById("collapse-all").addEventListener("click", () => {
    rows.forEach((row) => { if (row.depth > 0 && row.childCount) collapsed.add(row.key); });
    computeVisible(); render(true);
  });

  let live = null;
  if (status === "open" && window.openLive) {
    let timer = null;
    live = window.openLive(root.dataset.live, () => {
      // Frames can come hundreds a second: refetch at most every 300 ms.
      if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 300);
    }, {onOpen: refresh});
  }
  refresh();
})();
