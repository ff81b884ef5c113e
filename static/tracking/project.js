// Project page: reads the summary and requests APIs, draws the charts, and refreshes (at most
// once a second) whenever the live socket says new requests were stored.
(function () {
  const root = document.getElementById("metrics");
  if (!root) return;
  const F = window.MetricsFormat;
  const state = {window: localStorage.getItem("metrics-window") || "1h", page: 1,
                 filters: filtersFromAddress(), sort: sortFromAddress()};
  // A link to one trace's requests (?trace_id=, from a trace or a test) shows them whenever
  // they were made.
  if (state.filters.trace_id) state.window = "all";
  let lastRefresh = 0, refreshTimer = null, loading = false;

  const $ = (id) => document.getElementById(id);
  const text = (id, value) => { $(id).textContent = value; };

  function cell(row, value, cls) {
    const td = row.insertCell();
    td.textContent = value;
    if (cls) td.className = cls;
    return td;
  }

  // Filters given in the page's address (?trace_id=..., ?view=...) fill the form.
  function filtersFromAddress() {
    const query = new URLSearchParams(location.search), filters = {};
    document.querySelectorAll("#request-filters [name]").forEach((input) => {
      const value = query.get(input.name);
      if (value) { input.value = value; filters[input.name] = value; }
    });
    return filters;
  }

  // The request's trace: a link when the trace was sent here, else its id (muted).
  function traceCell(row, r) {
    const td = cell(row, "", "trace");
    if (r.trace_url) {
      const link = document.createElement("a");
      link.href = r.trace_url;
      link.textContent = "trace";
      link.title = "Trace " + r.trace_id;
      td.appendChild(link);
    } else if (r.trace_id) {
      td.textContent = r.trace_id.slice(0, 8) + "…";
      td.className = "trace muted mono";
      td.title = "Trace " + r.trace_id + " (its spans were not sent to this server)";
    }
    return td;
  }

  function statusCell(row, code) {
    const td = cell(row, "", "num");
    const span = document.createElement("span");
    span.className = "status-" + String(code)[0] + "xx";
    span.textContent = code;
    td.appendChild(span);
    return td;
  }

  function renderSlowest(page) {
    const body = $("slowest-requests").tBodies[0];
    body.innerHTML = "";
    if (!page.results.length) {
      cell(body.insertRow(), "No requests in this window.", "muted").colSpan = 5;
      return;
    }
    page.results.forEach((r) => {
      const row = body.insertRow();
      row.dataset.id = r.id;
      cell(row, "").appendChild(Times.element(r.received_at));
      cell(row, (r.method ? r.method + " " : "") + r.path + (r.query ? "?" + r.query : ""), "path");
      statusCell(row, r.status_code);
      cell(row, F.ms(r.duration_ms), "num");
      traceCell(row, r);
    });
  }

  function windowParams() {
    return state.window === "all" ? {} : {last: state.window};
  }

  // --- sorting the requests table: ?sort=column or ?sort=-column, as the server-side tables.
  function sortHeaders() {
    return Array.from(document.querySelectorAll("#requests th[data-column]"));
  }

  function sortFromAddress() {
    const value = new URLSearchParams(location.search).get("sort") || "";
    const column = value.replace(/^-/, "");
    // Anything but a column of the table keeps the default order, as on the other pages.
    return sortHeaders().some((th) => th.dataset.column === column) ? value : "-time";
  }

  function showSort() {
    const column = state.sort.replace(/^-/, ""), descending = state.sort.startsWith("-");
    sortHeaders().forEach((th) => {
      const link = th.querySelector("a");
      const active = th.dataset.column === column;
      const next = active ? (descending ? "" : "-") : (th.dataset.first === "desc" ? "-" : "");
      const query = new URLSearchParams(location.search);
      query.set("sort", next + th.dataset.column);
      link.href = "?" + query.toString();
      link.classList.toggle("active", active);
      link.querySelectorAll(".sort-arrow").forEach((arrow) => arrow.remove());
      if (active) {
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        const arrow = document.createElement("span");
        arrow.className = "sort-arrow";
        arrow.setAttribute("aria-hidden", "true");
        arrow.textContent = descending ? " ▼" : " ▲";
        link.appendChild(arrow);
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  // --- filter errors: the requests API names the field; the message goes beside it.
  function showFilterErrors(errors) {
    const form = $("request-filters");
    form.querySelectorAll("label .errorlist").forEach((list) => list.remove());
    form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
    const unplaced = [];
    Object.entries(errors || {}).forEach(([name, messages]) => {
      const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!input) { unplaced.push(name + ": " + messages.join(" ")); return; }
      input.setAttribute("aria-invalid", "true");
      const list = document.createElement("ul");
      list.className = "errorlist";
      messages.forEach((message) => {
        const item = document.createElement("li");
        item.textContent = message;
        list.appendChild(item);
      });
      input.closest("label").appendChild(list);
    });
    return unplaced;
  }

  async function getJSON(url, params) {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(url + (query ? "?" + query : ""), {headers: {Accept: "application/json"}});
    const body = await response.json();
    if (!response.ok) throw body;
    return body;
  }

  function perMinute(value) {
    return value < 10 ? value.toFixed(1) : String(Math.round(value));
  }

  function renderSummary(s) {
    const minutes = s.series.step_seconds / 60;
    // The peak is the chart's highest point: per minute, or a per-minute average over an hour
    // (or day) when the window is too long for one point per minute.
    const peak = Math.max(0, ...s.series.points.map((p) => p.count / minutes));
    const per = minutes === 1 ? "" : minutes === 60 ? " (hourly)" : " (daily)";
    text("stat-count", F.count(s.count));
    text("stat-rate", s.count ? `avg ${perMinute(s.requests_per_minute)}/min · peak ${perMinute(peak)}/min${per}` : "");
    text("stat-errors", s.count ? F.percent(s.error_rate) : "–");
    text("stat-client-errors", s.count ? "4xx: " + F.percent(s.client_error_rate) : "");
    text("stat-p50", F.ms(s.p50_ms));
    text("stat-p95", F.ms(s.p95_ms));
    text("stat-p99", F.ms(s.p99_ms));
    $("empty-state").hidden = s.count > 0;
    const points = s.series.points.map((p) => ({
      start: p.start, rate: p.count / minutes,
      errors: p.count ? p.error_rate * 100 : null,
      p50: p.p50_ms, p95: p.p95_ms, p99: p.p99_ms,
    }));
    lineChart($("chart-rate"), points, [{key: "rate", cls: "rate", fill: true}],
      {format: (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v))});
    lineChart($("chart-errors"), points, [{key: "errors", cls: "errors", fill: true}],
      {format: (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " %"), minMax: 1});
    lineChart($("chart-latency"), points, [{key: "p50", cls: "p50"}, {key: "p95", cls: "p95"}, {key: "p99", cls: "p99"}],
      {format: F.ms});
    const slowest = s.views.slice().sort((a, b) => (b.p95_ms || 0) - (a.p95_ms || 0)).slice(0, 8);
    fillViews("slowest-views", slowest, (row, v) => {
      cell(row, v.count, "num"); cell(row, F.ms(v.p50_ms), "num");
      cell(row, F.ms(v.p95_ms), "num"); cell(row, F.ms(v.p99_ms), "num");
    });
    const failing = s.views.filter((v) => v.server_errors || v.client_errors)
      .sort((a, b) => b.error_rate - a.error_rate || b.client_error_rate - a.client_error_rate).slice(0, 8);
    fillViews("failing-views", failing, (row, v) => {
      cell(row, v.count, "num"); cell(row, v.server_errors, "num");
      cell(row, v.client_errors, "num"); cell(row, F.percent(v.error_rate), "num");
    }, "No failing views in this window.");
  }

  function fillViews(id, views, fill, emptyText) {
    const body = $(id).tBodies[0];
    body.innerHTML = "";
    if (!views.length) {
      const row = body.insertRow();
      const td = cell(row, emptyText || "No requests in this window.", "muted");
      td.colSpan = 5;
      return;
    }
    views.forEach((v) => {
      const row = body.insertRow();
      const name = cell(row, v.view_name || "(no view)");
      name.addEventListener("click", () => { document.querySelector("#request-filters [name=view]").value = v.view_name; applyFilters(); });
      name.style.cursor = "pointer";
      name.title = "Show this view's requests";
      fill(row, v);
    });
  }

  function renderRequests(page, seen, summary) {
    const body = $("requests").tBodies[0];
    body.innerHTML = "";
    if (!page.results.length) {
      const td = cell(body.insertRow(), "No requests match.", "muted");
      td.colSpan = 8;
    }
    // Same window as the summary; without filters the counts can differ only where raw
    // requests were deleted after the retention period (rollups are kept).
    const note = $("requests-note");
    note.hidden = !(summary && !Object.keys(state.filters).length && page.count < summary.count);
    if (!note.hidden) {
      note.textContent = `The figures above count ${F.count(summary.count)} requests; the table lists the ${F.count(page.count)} still stored: single requests are kept ${root.dataset.rawRetentionDays} days, the counts for good.`;
    }
    page.results.forEach((r) => {
      const row = body.insertRow();
      if (seen && !seen.has(r.id)) row.className = "fresh";
      row.dataset.id = r.id;
      cell(row, "").appendChild(Times.element(r.received_at));
      cell(row, r.method || "–");
      cell(row, r.path + (r.query ? "?" + r.query : ""), "path");
      cell(row, r.view_name || "–");
      statusCell(row, r.status_code);
      cell(row, F.ms(r.duration_ms), "num");
      cell(row, r.client_ip || "", "hide-narrow");
      traceCell(row, r);
    });
    text("page-info", page.count ? `Page ${page.page_number} of ${page.total_pages} · ${page.count} requests` : "");
    $("prev-page").disabled = !page.has_previous;
    $("next-page").disabled = !page.has_next;
  }

  async function refresh() {
    if (loading) { scheduleRefresh(); return; }
    loading = true;
    lastRefresh = Date.now();
    try {
      const summary = await getJSON(root.dataset.summaryUrl, windowParams());
      // The table reads the very window the summary answered for (not "the last hour" again a
      // moment later), so the two agree.
      let page, slowest;
      try {
        [page, slowest] = await Promise.all([
          getJSON(root.dataset.requestsUrl, {since: summary.since, until: summary.until,
            ...state.filters, sort: state.sort, page: state.page, page_size: 25}),
          getJSON(root.dataset.requestsUrl, {since: summary.since, until: summary.until,
            sort: "-duration", page_size: 5}),
        ]);
      } catch (error) {
        renderSummary(summary);
        const unplaced = showFilterErrors(error && error.errors);
        $("filter-error").firstElementChild.textContent = "No requests listed: "
          + (unplaced.length ? unplaced.join("; ") : "correct the filter marked above.");
        $("filter-error").hidden = false;
        $("requests").tBodies[0].innerHTML = "";
        $("requests-note").hidden = true;
        text("page-info", "");
        $("prev-page").disabled = $("next-page").disabled = true;
        return;
      }
      showFilterErrors({});
      $("filter-error").hidden = true;
      // Both at once: the card and the table never show two different moments. Not under a
      // pressed pointer (a trace link, a view's name): once it is released (window.redraw).
      redraw(root, () => {
        // New rows are marked against the rows on screen until now.
        const seen = new Set(Array.from($("requests").tBodies[0].rows).map((r) => Number(r.dataset.id)));
        renderSummary(summary);
        renderSlowest(slowest);
        renderRequests(page, seen.size ? seen : null, summary);
      });
    } catch (error) {
      $("filter-error").firstElementChild.textContent = (error && error.detail) || "Could not load metrics.";
      $("filter-error").hidden = false;
    } finally {
      loading = false;
    }
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, wait);
  }

  function applyFilters() {
    const form = $("request-filters");
    state.filters = {};
    new FormData(form).forEach((value, key) => { if (value !== "") state.filters[key] = value; });
    state.page = 1;
    refresh();
  }

  document.querySelectorAll("[data-window]").forEach((button) => {
    button.classList.toggle("active", button.dataset.window === state.window);
    button.addEventListener("click", () => {
      state.window = button.dataset.window;
      localStorage.setItem("metrics-window", state.window);
      document.querySelectorAll("[data-window]").forEach((b) => b.classList.toggle("active", b === button));
      state.page = 1;
      refresh();
    });
  });
  $("request-filters").addEventListener("submit", (event) => { event.preventDefault(); applyFilters(); });
  $("request-filters").addEventListener("reset", () => setTimeout(applyFilters, 0));
  sortHeaders().forEach((th) => th.querySelector("a").addEventListener("click", (event) => {
    event.preventDefault();
    state.sort = new URLSearchParams(event.currentTarget.search).get("sort");
    const query = new URLSearchParams(location.search);
    query.set("sort", state.sort);
    history.replaceState(null, "", "?" + query.toString());
    state.page = 1;
    showSort();
    refresh();
  }));
  showSort();
  $("prev-page").addEventListener("click", () => { state.page -= 1; refresh(); });
  $("next-page").addEventListener("click", () => { state.page += 1; refresh(); });
  window.addEventListener("resize", scheduleRefresh);

  refresh();
  openLive(root.dataset.livePath, (frame) => {
    // Only the first page shows new arrivals; older pages stay put while reading.
    if (frame.type === "requests" && state.page === 1) scheduleRefresh();
  }, {onOpen: scheduleRefresh});
})();
