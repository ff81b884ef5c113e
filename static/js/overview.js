// The home page's overview, kept current: the server renders the panel (templates/
// overview_panel.html) and this swaps in a fresh copy of it, so the page and its refreshes are
// drawn by one template. A refresh follows every change of a machine's latest run (the machine
// list's socket, ws/machine/status/, at most one refresh per 2 s however many frames arrive), and
// every 10 s for what has no socket of its own here (request-metric limits, traces with errors,
// a machine falling silent). A copy that arrives while a pointer is pressed inside the panel waits
// until it is released (window.redraw, static/js/live.js): swapped in between a link's press and
// release, it would take the link away and the click with it.
(function () {
  "use strict";
  const holder = document.getElementById("overview");
  if (!holder) return;
  const url = holder.dataset.panelUrl;
  const MIN_GAP_MS = 2000;
  const PERIOD_MS = 10000;
  let last = 0;
  let pending = null;
  let inFlight = false;

  function show(html) {
    window.redraw(holder, () => {
      holder.innerHTML = html;
      holder.dataset.refreshed = String(Date.now());
      if (window.Times && window.Times.refresh) window.Times.refresh();
    });
  }

  function refresh() {
    if (inFlight) { schedule(); return; }
    inFlight = true;
    last = Date.now();
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then(show)
      .catch(() => { /* the indicator shows the socket's state; the next refresh retries */ })
      .finally(() => { inFlight = false; });
  }

  function schedule() {
    if (pending) return;
    const wait = Math.max(0, last + MIN_GAP_MS - Date.now());
    pending = setTimeout(() => { pending = null; refresh(); }, wait);
  }

  window.openLive("/ws/machine/status/", schedule, {onOpen: schedule});
  setInterval(schedule, PERIOD_MS);
})();
