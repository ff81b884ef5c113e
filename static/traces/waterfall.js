// The trace page: spans as bars on one time axis, nesting indented, one colour per service
// (legend above), errors marked on the span and its ancestors, events as markers, the critical
// path drawn on the bars, search within the trace, the span's detail (attributes, resource,
// events, links) on click, collapsible subtrees, and per-service / per-operation statistics.
// Only the rows in view are in the DOM (a 10,000-span trace stays smooth). An open trace of the
// trace websocket protocol, and any OTLP or Zipkin trace, refreshes live.
// Everything a span carries is client data: it is written with textContent and DOM APIs only.
(function () {
  "use strict";
  const ROW = 26;        // px per row; keep in sync with .wf-row in traces.css
  const OVERSCAN = 8;    // rows rendered above and below the visible ones
  const MAX_INDENT = 12;
  const MAX_STAT_ROWS = 100;  // operations listed in the statistics (the most self time first)
  // Distinct hues for services, in order of their names; more services than colours repeat.
  const PALETTE = ["#2d6cdf", "#2e9d5b", "#d97706", "#6e56cf", "#0e7490", "#c2410c", "#be185d",
                   "#4d7c0f", "#7c3aed", "#0f766e", "#a16207", "#1e40af"];

  const root = document.getElementById("waterfall");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const viewport = $("waterfall-viewport"), spacer = $("waterfall-spacer");
  const axis = $("waterfall-axis"), empty = $("waterfall-empty"), detail = $("span-detail");
  const count = $("waterfall-count"), legend = $("service-legend");
  const searchBox = $("trace-search"), searchCount = $("search-count");
  const criticalBox = $("show-critical");
  const perSecond = parseFloat(root.dataset.unitsPerSecond) || 1;
  const otlp = root.dataset.otlp === "true";
  const quietSeconds = parseFloat(root.dataset.quietSeconds) || 30;
  const math = window.TraceMath;

  let rows = [];          // the trace and every span in tree order (see flatten)
  let byKey = new Map();  // key -> row index
  let visible = [];       // rows not hidden by a collapsed ancestor
  const collapsed = new Set();
  let selectedKey = null;
  let t0 = 0, t1 = 1;
  let rendered = new Map(); // position in `visible` -> element
  let colours = new Map();  // service -> colour
  let matches = [], matchSet = new Set(), matchAt = -1, query = "", matchKey = null;
  let traceDuration = 0;

  // --- formatting ------------------------------------------------------------------------------

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

  function percent(part, whole) {
    if (!whole) return "—";
    const value = (part / whole) * 100;
    return (value >= 10 ? value.toFixed(0) : value.toFixed(1)) + " %";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // --- the tree as rows ------------------------------------------------------------------------

  function isSpan(row) { return row.node.type === "SPAN" && !row.node.placeholder; }
  function serviceOf(row) { return row.node.service || ""; }
  function serviceLabel(service) { return service || "(no service)"; }

  function flatten(tree) {
    const out = [];
    // Iterative: a 10,000-deep chain must not overflow the stack.
    const stack = [{node: tree, depth: 0, key: "t", parent: -1}];
    while (stack.length) {
      const item = stack.pop();
      const index = out.length;
      const spans = [];
      // Events: the trace websocket protocol's are EVENT children, OTLP's a list on the span.
      item.events = [];
      for (const child of item.node.children || []) {
        if (child.type === "EVENT") item.events.push({name: child.name, time: child.timestamp, attributes: child.attributes});
        else spans.push(child);
      }
      for (const ev of item.node.events || []) item.events.push({name: ev.name, time: ev.time, attributes: ev.attributes});
      item.childCount = spans.length;
      item.children = [];
      item.error = !!(item.node.status && item.node.status.code === "error");
      item.errorBelow = false;
      if (item.parent >= 0) out[item.parent].children.push(index);
      out.push(item);
      for (let i = spans.length - 1; i >= 0; i--) {
        const node = spans[i];
        // Keyed by span id where there is one, so a selection or a collapsed subtree stays
        // put when a live refresh brings spans that sort before it.
        const key = node.span_id ? "s:" + node.span_id + (node.placeholder ? ":p" : "") : item.key + "." + i;
        stack.push({node, depth: item.depth + 1, key, parent: index});
      }
    }
    // Children were pushed in the order they were visited: restore their start order.
    for (const row of out) row.children.sort((a, b) => a - b);
    for (let i = out.length - 1; i > 0; i--) {
      const row = out[i];
      if (row.error || row.errorBelow) out[row.parent].errorBelow = true;
    }
    return out;
  }

  function analyse() {
    const items = rows.map((row) => ({
      start: row.node.start === null || row.node.start === undefined ? t0 : row.node.start,
      end: row.node.end === null || row.node.end === undefined ? t1 : row.node.end,
      children: row.children,
    }));
    const selfs = math.selfTimes(items);
    rows.forEach((row, i) => { row.self = selfs[i]; row.critical = null; });
    for (const section of math.criticalPath(items)) {
      if (section.item === 0) continue;  // time no top-level span covers
      const row = rows[section.item];
      (row.critical = row.critical || []).push(section);
    }
    const services = [...new Set(rows.filter(isSpan).map(serviceOf))].sort();
    colours = new Map(services.map((service, i) => [service, PALETTE[i % PALETTE.length]]));
    drawLegend(services);
    drawStats(items, selfs);
  }

  // --- drawing rows ----------------------------------------------------------------------------

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
    const current = matchAt >= 0 && matches[matchAt] === index;
    const div = el("div", "wf-row" + (row.key === selectedKey ? " selected" : "") +
      (node.open ? " open" : "") + (node.type === "TRACE" ? " wf-trace" : "") +
      (row.error ? " error" : "") + (node.placeholder ? " placeholder" : "") +
      (matchSet.has(index) ? " match" : "") + (current ? " current" : "") +
      (row.critical && criticalBox.checked ? " on-critical-path" : ""));
    div.dataset.key = row.key;
    div.setAttribute("role", "row");

    const label = el("div", "wf-label");
    // Indent up to MAX_INDENT levels; deeper rows say their depth, so names stay in view.
    label.style.paddingLeft = 6 + Math.min(row.depth, MAX_INDENT) * 14 + "px";
    if (row.childCount) {
      const toggle = el("button", "wf-toggle", collapsed.has(row.key) ? "▸" : "▾");
      toggle.type = "button";
      toggle.setAttribute("aria-label", (collapsed.has(row.key) ? "Expand " : "Collapse ") + (node.name || "trace"));
      toggle.addEventListener("click", (event) => { event.stopPropagation(); toggleRow(row.key); });
      label.appendChild(toggle);
    } else {
      label.appendChild(el("span", "wf-toggle-pad"));
    }
    if (row.depth > MAX_INDENT) {
      const depth = el("span", "wf-depth", row.depth);
      depth.title = "nested " + row.depth + " levels deep";
      label.appendChild(depth);
    }
    if (row.error) {
      const mark = el("span", "wf-error-mark", "!");
      mark.title = "Error" + (node.status.message ? ": " + node.status.message : "");
      mark.setAttribute("aria-label", "error");
      label.appendChild(mark);
    } else if (row.errorBelow) {
      const mark = el("span", "wf-error-below");
      mark.title = "A span below this one is in error";
      mark.setAttribute("aria-label", "error below");
      label.appendChild(mark);
    }
    if (isSpan(row)) {
      const swatch = el("span", "wf-swatch");
      swatch.style.background = colours.get(serviceOf(row));
      swatch.title = serviceLabel(serviceOf(row));
      label.appendChild(swatch);
    }
    const name = el("span", "wf-name", node.type === "TRACE" ? "Trace" : node.name);
    name.title = name.textContent;
    label.appendChild(name);
    if (isSpan(row) && serviceOf(row)) label.appendChild(el("span", "wf-service", serviceOf(row)));
    div.appendChild(label);

    const lane = el("div", "wf-lane");
    const bar = el("div", "wf-bar");
    if (isSpan(row)) bar.style.background = colours.get(serviceOf(row));
    const left = pct(node.start);
    bar.style.left = left + "%";
    bar.style.width = Math.max(pct(node.end) - left, 0.15) + "%";
    if (pct(node.end) - left > 25) bar.classList.add("label-inside");
    else if (pct(node.end) > 80) bar.classList.add("label-left");
    bar.appendChild(el("span", "wf-duration", human(node.end - node.start) + (node.open ? " …" : "")));
    lane.appendChild(bar);
    if (row.critical && criticalBox.checked) {
      for (const section of row.critical) {
        const piece = el("div", "wf-critical");
        piece.style.left = pct(section.start) + "%";
        piece.style.width = Math.max(pct(section.end) - pct(section.start), 0.1) + "%";
        piece.title = "Critical path: " + human(section.end - section.start);
        lane.appendChild(piece);
      }
    }
    for (const ev of row.events) {
      const marker = el("button", "wf-event");
      marker.type = "button";
      marker.style.left = pct(ev.time) + "%";
      marker.title = ev.name + " at +" + human(ev.time - t0);
      marker.setAttribute("aria-label", "Event " + ev.name);
      marker.addEventListener("click", (event) => { event.stopPropagation(); showEvent(ev, row); });
      lane.appendChild(marker);
    }
    div.appendChild(lane);
    div.addEventListener("click", () => select(row.key));
    return div;
  }

  function render(force) {
    const height = viewport.clientHeight;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(visible.length - 1, Math.ceil((viewport.scrollTop + height) / ROW) + OVERSCAN);
    if (force) { rendered.forEach((row) => row.remove()); rendered.clear(); }
    rendered.forEach((row, position) => {
      if (position < first || position > last) { row.remove(); rendered.delete(position); }
    });
    for (let position = first; position <= last; position++) {
      if (rendered.has(position)) continue;
      const row = buildRow(visible[position]);
      row.style.top = position * ROW + "px";
      spacer.appendChild(row);
      rendered.set(position, row);
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

  // Expands the row's collapsed ancestors and scrolls it into the middle of the view.
  function reveal(index) {
    let changed = false;
    for (let up = rows[index].parent; up >= 0; up = rows[up].parent) {
      if (collapsed.delete(rows[up].key)) changed = true;
    }
    if (changed) computeVisible();
    const position = visible.indexOf(index);
    const top = position * ROW, height = viewport.clientHeight;
    if (top < viewport.scrollTop || top + ROW > viewport.scrollTop + height) {
      viewport.scrollTop = Math.max(0, top - height / 2);
    }
    render(true);
  }

  // --- legend, statistics ----------------------------------------------------------------------

  function drawLegend(services) {
    legend.replaceChildren();
    legend.hidden = !services.length;
    const counts = new Map();
    for (const row of rows) if (isSpan(row)) counts.set(serviceOf(row), (counts.get(serviceOf(row)) || 0) + 1);
    for (const service of services) {
      const item = el("li", "wf-legend-item");
      const swatch = el("span", "wf-swatch");
      swatch.style.background = colours.get(service);
      item.append(swatch, el("span", "wf-legend-name", serviceLabel(service)),
                  el("span", "muted", " " + counts.get(service)));
      item.title = serviceLabel(service) + ": " + counts.get(service) + " span" + (counts.get(service) === 1 ? "" : "s");
      legend.appendChild(item);
    }
  }

  function statTable(caption, columns, groups, cells) {
    const table = el("table", "trace-stats-table");
    table.appendChild(el("caption", null, caption));
    const head = el("tr");
    for (const [title, numeric] of columns) head.appendChild(el("th", numeric ? "num" : null, title));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const group of groups) {
      const tr = el("tr");
      cells(group).forEach((value, i) => {
        const td = el("td", columns[i][1] ? "num" : null);
        if (value instanceof Node) td.appendChild(value); else td.textContent = value;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    return table;
  }

  function serviceCell(service) {
    const span = el("span", "wf-stat-service");
    const swatch = el("span", "wf-swatch");
    swatch.style.background = colours.get(service);
    span.append(swatch, document.createTextNode(serviceLabel(service)));
    return span;
  }

  function drawStats(items, selfs) {
    const box = $("trace-stats-body");
    box.replaceChildren();
    const spans = rows.map((row, i) => i).filter((i) => isSpan(rows[i]));
    $("trace-stats").hidden = !spans.length;
    if (!spans.length) return;
    traceDuration = (items[0].end - items[0].start) || 0;
    const isError = (i) => rows[i].error;
    const spanSet = new Set(spans);
    const byService = math.stats(items, selfs, (i) => spanSet.has(i) ? serviceOf(rows[i]) : null, isError);
    // An operation is a span name within its service.
    const byOperation = math.stats(items, selfs, (i) => spanSet.has(i) ? serviceOf(rows[i]) + "\u0000" + rows[i].node.name : null, isError);
    box.appendChild(statTable("By service", [
      ["Service"], ["Spans", 1], ["Errors", 1], ["Total", 1], ["Self time", 1], ["Self, % of trace", 1],
    ], byService, (g) => [serviceCell(g.name), String(g.count), String(g.errors), human(g.total),
                          human(g.self), percent(g.self, traceDuration)]));
    const shown = byOperation.slice(0, MAX_STAT_ROWS);
    box.appendChild(statTable("By operation", [
      ["Service"], ["Operation"], ["Spans", 1], ["Errors", 1], ["Total", 1], ["Average", 1],
      ["Longest", 1], ["Self time", 1], ["Self, % of trace", 1],
    ], shown, (g) => {
      const [service, name] = g.name.split("\u0000");
      return [serviceCell(service), name, String(g.count), String(g.errors), human(g.total),
              human(g.total / g.count), human(g.max), human(g.self), percent(g.self, traceDuration)];
    }));
    if (byOperation.length > shown.length) {
      box.appendChild(el("p", "muted", "And " + (byOperation.length - shown.length) +
        " more operations, with less self time."));
    }
  }

  // --- search ----------------------------------------------------------------------------------

  // What a row is found by: name, service, span id, status message, attribute keys and values,
  // resource values, event names. Built once per row and refresh, lower-cased.
  function haystack(row) {
    if (row.text === undefined) {
      const node = row.node;
      const parts = [node.name || "", node.service || "", node.span_id || "",
                     node.status ? node.status.message || "" : ""];
      for (const source of [node.attributes, node.resource]) {
        if (source) for (const key in source) parts.push(key + "=" + valueText(source[key]));
      }
      for (const ev of row.events) parts.push(ev.name || "");
      row.text = parts.join("\n").toLowerCase();
    }
    return row.text;
  }

  function runSearch(keepPosition) {
    query = searchBox.value.trim().toLowerCase();
    matches = [];
    if (query) {
      for (let i = 1; i < rows.length; i++) if (haystack(rows[i]).includes(query)) matches.push(i);
    }
    matchSet = new Set(matches);
    // A live refresh keeps the match in view; a new query starts at its first match.
    const previous = keepPosition && byKey.has(matchKey) ? matches.indexOf(byKey.get(matchKey)) : -1;
    matchAt = !matches.length ? -1 : Math.max(0, previous);
    matchKey = matchAt >= 0 ? rows[matches[matchAt]].key : null;
    searchCount.textContent = !query ? "" : matches.length
      ? (matchAt + 1) + " of " + matches.length + " match" + (matches.length === 1 ? "" : "es")
      : "no match";
    if (matchAt >= 0 && !keepPosition) reveal(matches[matchAt]); else render(true);
  }

  function step(by) {
    if (!matches.length) return;
    matchAt = (matchAt + by + matches.length) % matches.length;
    matchKey = rows[matches[matchAt]].key;
    searchCount.textContent = (matchAt + 1) + " of " + matches.length + " match" + (matches.length === 1 ? "" : "es");
    reveal(matches[matchAt]);
  }

  let searchTimer = null;
  searchBox.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(false), 120);
  });
  searchBox.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    clearTimeout(searchTimer);
    if (searchBox.value.trim().toLowerCase() !== query) runSearch(false);
    else step(event.shiftKey ? -1 : 1);
  });
  $("search-next").addEventListener("click", () => step(1));
  $("search-prev").addEventListener("click", () => step(-1));
  criticalBox.addEventListener("change", () => render(true));

  // --- detail ----------------------------------------------------------------------------------

  function valueText(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "string") return value;
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function fact(label, value) {
    const dt = el("dt", null, label);
    const dd = el("dd");
    if (Array.isArray(value)) dd.append(...value);
    else if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    const div = el("div");
    div.append(dt, dd);
    return div;
  }

  // Attributes as a two-column table, keys sorted; structured values as JSON.
  function keyValues(title, values, className) {
    const keys = values ? Object.keys(values).sort() : [];
    if (!keys.length) return null;
    const section = el("section", "kv-section" + (className ? " " + className : ""));
    section.appendChild(el("h3", null, title + " (" + keys.length + ")"));
    const table = el("table", "kv");
    for (const key of keys) {
      const tr = el("tr");
      const th = el("th", null, key);
      th.scope = "row";
      const value = values[key];
      const td = el("td", typeof value === "string" ? "kv-string" : "kv-value", valueText(value));
      tr.append(th, td);
      table.appendChild(tr);
    }
    section.appendChild(table);
    return section;
  }

  function traceLink(traceId) {
    if (typeof traceId === "string" && /^[0-9a-f]{32}$/i.test(traceId)) {
      const a = el("a", "mono", traceId);
      a.href = "/traces/" + traceId.toLowerCase() + "/";
      return a;
    }
    return el("span", "mono", valueText(traceId));
  }

  function select(key) {
    const index = byKey.get(key);
    if (index === undefined) return;
    selectedKey = key;
    const row = rows[index];
    const node = row.node;
    detail.replaceChildren();
    const title = el("h2", null, node.type === "TRACE" ? "Trace" : node.name);
    if (row.error) title.prepend(el("span", "badge status-error", "error"), " ");
    const list = el("dl", "trace-facts");
    if (isSpan(row)) list.append(fact("Service", serviceLabel(serviceOf(row))));
    if (node.kind) list.append(fact("Kind", node.kind));
    if (node.status) {
      list.append(fact("Status", node.status.code + (node.status.message ? ": " + node.status.message : "")));
    }
    list.append(
      fact("Start", when(node.start)),
      fact(node.open ? "Seen until" : "End", when(node.end)),
      fact("Duration", human(node.end - node.start) + (node.open ? " (still open)" : "")),
      fact("Self time", human(row.self)),
      fact("Child spans", String(row.childCount)), fact("Events", String(row.events.length)),
    );
    if (row.critical) {
      list.append(fact("On the critical path", human(row.critical.reduce((sum, s) => sum + s.end - s.start, 0))));
    }
    if (node.span_id) list.append(fact("Span id", el("span", "mono", node.span_id)));
    if (node.parent_span_id) list.append(fact("Parent span id", el("span", "mono", node.parent_span_id)));
    if (node.placeholder) list.append(fact("Note", "This span has not arrived (yet); its children have."));
    detail.append(title, list);
    const attributes = keyValues("Attributes", node.attributes, "attributes");
    if (attributes) detail.appendChild(attributes);
    const resource = keyValues("Resource", node.resource, "resource");
    if (resource) detail.appendChild(resource);
    if (row.events.length) {
      const section = el("section", "kv-section events");
      section.appendChild(el("h3", null, "Events (" + row.events.length + ")"));
      const list = el("ol", "wf-event-list");
      for (const ev of row.events.slice(0, 200)) {
        const li = el("li");
        li.append(el("strong", null, ev.name), " at ", ...when(ev.time));
        const values = keyValues("Attributes", ev.attributes);
        if (values) li.appendChild(values.querySelector("table"));
        list.appendChild(li);
      }
      section.appendChild(list);
      if (row.events.length > 200) section.appendChild(el("p", "muted", "And " + (row.events.length - 200) + " more events."));
      detail.appendChild(section);
    }
    if (node.links && node.links.length) {
      const section = el("section", "kv-section links");
      section.appendChild(el("h3", null, "Links (" + node.links.length + ")"));
      const list = el("ul", "wf-event-list");
      for (const link of node.links) {
        const li = el("li");
        li.append("trace ", traceLink(link.trace_id), ", span ", el("span", "mono", valueText(link.span_id)));
        const values = keyValues("Attributes", link.attributes);
        if (values) li.appendChild(values.querySelector("table"));
        list.appendChild(li);
      }
      section.appendChild(list);
      detail.appendChild(section);
    }
    detail.hidden = false;
    render(true);
  }

  function showEvent(ev, row) {
    selectedKey = row.key;
    detail.replaceChildren();
    const list = el("dl", "trace-facts");
    list.append(fact("At", when(ev.time)),
                fact("In", row.node.type === "TRACE" ? "the trace" : row.node.name));
    detail.append(el("h2", null, "Event " + ev.name), list);
    const values = keyValues("Attributes", ev.attributes, "attributes");
    if (values) detail.appendChild(values);
    detail.hidden = false;
    render(true);
  }

  function drawAxis() {
    axis.replaceChildren();
    for (let i = 0; i <= 4; i++) {
      const tick = el("span", "wf-tick", human(((t1 - t0) * i) / 4));
      tick.style.left = i * 25 + "%";
      axis.appendChild(tick);
    }
  }

  // --- loading and live ------------------------------------------------------------------------

  function show(body) {
    const tree = body.trace;
    // The root span's name: while the trace is open, a later frame can bring an earlier span.
    $("trace-name").textContent = body.name || "(unnamed)";
    $("trace-status").textContent = body.status;
    $("trace-status").className = "badge status-" + body.status;
    $("trace-spans").textContent = body.span_count;
    $("trace-events").textContent = body.event_count;
    $("trace-duration").textContent = human(body.duration);
    $("trace-errors").textContent = body.error_count;
    $("trace-errors").classList.toggle("has-errors", body.error_count > 0);
    // The root span's service, once the root has arrived.
    $("trace-service").textContent = body.service || "";
    $("trace-service-fact").hidden = !body.service;
    const missing = $("trace-missing");
    missing.hidden = !body.missing.length;
    $("trace-missing-text").textContent = body.missing.join(", ");

    t0 = tree.start === null ? 0 : tree.start;
    t1 = tree.end === null ? 1 : tree.end;
    rows = tree.start === null ? [] : flatten(tree);
    byKey = new Map(rows.map((row, i) => [row.key, i]));
    empty.hidden = rows.length > 1 || (rows.length === 1 && rows[0].events.length > 0);
    root.dataset.loaded = String(rows.length - 1);  // spans drawn (tests wait for it)
    if (rows.length) analyse(); else { legend.hidden = true; $("trace-stats").hidden = true; }
    computeVisible();
    drawAxis();
    if (query || searchBox.value.trim()) runSearch(true); else render(true);
    if (selectedKey && byKey.has(selectedKey)) select(selectedKey);
  }

  let loading = null, again = false, quietTimer = null, shownText = null;
  function refresh() {
    if (loading) { again = true; return; }
    loading = fetch(root.dataset.api, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then((response) => response.ok ? response.text() : Promise.reject(response.status))
      .then((text) => {
        const body = JSON.parse(text);
        // The same trace as on the page (a live message's second look, a quiet-period look):
        // leave the rows alone, so a row being hovered, read or clicked is not redrawn under
        // the pointer. A changed trace is drawn once a pointer pressed in it is released
        // (window.redraw): a row redrawn between press and release would lose its click.
        if (text !== shownText) redraw(root, () => { show(body); shownText = text; });
        if (body.status !== "open" && live && !otlp) { live.close(); live = null; setStoredIndicator(); }
        // An OTLP trace turns complete after a quiet period with no frame to say so: look again
        // then. (A span arriving later opens it again, so its page keeps listening.)
        clearTimeout(quietTimer);
        if (otlp && body.status === "open") quietTimer = setTimeout(refresh, (quietSeconds + 1) * 1000);
      })
      .catch(() => {})
      .finally(() => {
        loading = null;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }

  function setStoredIndicator() {
    document.querySelectorAll(".live-indicator").forEach((node) => { node.hidden = true; });
  }

  $("expand-all").addEventListener("click", () => {
    collapsed.clear(); computeVisible(); render(true);
  });
  $("collapse-all").addEventListener("click", () => {
    rows.forEach((row) => { if (row.depth > 0 && row.childCount) collapsed.add(row.key); });
    computeVisible(); render(true);
  });

  let live = null;
  if ((root.dataset.open === "true" || otlp) && window.openLive) {
    let timer = null;
    live = window.openLive(root.dataset.live, () => {
      // Frames can come hundreds a second: refetch at most every 300 ms.
      if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 300);
    }, {onOpen: refresh});
  }
  refresh();
})();
