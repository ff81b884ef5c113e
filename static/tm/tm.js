// Shared by the test-machine pages: human durations, status bars and badges and the script
// modal. The status order and the badge and bar markup come from the server's table
// (tm_api/templatetags/tm_format.py), which the page carries in #tm-format before this script.
(function () {
  const TABLE = JSON.parse(document.getElementById("tm-format").textContent);
  const PRIORITY = TABLE.priority;
  const ONGOING = TABLE.ongoing;

  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function humanDuration(seconds) {
    if (seconds == null) return "—";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    let minutes = Math.floor(Math.round(seconds) / 60);
    const secs = Math.round(seconds) % 60;
    if (minutes < 60) return secs ? minutes + " min " + secs + " s" : minutes + " min";
    const hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return minutes ? hours + " h " + minutes + " min" : hours + " h";
  }

  // One of the table's templates with its {names} replaced (values are HTML already).
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, name) => values[name]);
  }

  function badge(status) {
    return fill(TABLE.badge, { status: esc(status) });
  }

  function bar(stats, total, extraClass) {
    stats = stats || {};
    const parts = [];
    const title = [];
    PRIORITY.forEach((status) => {
      const n = stats[status] || 0;
      if (!n || !total) return;
      parts.push(fill(TABLE.bar_segment, { status: esc(status), width: (100 * n / total).toFixed(3) }));
      title.push(n + " " + status);
    });
    return fill(TABLE.bar, { extra: extraClass ? " " + esc(extraClass) : "",
      label: esc(title.join(", ") || "no tests"), segments: parts.join("") });
  }

  // The time a run has left, said as tm_api/templatetags/tm_format.py's time_left says it.
  function timeLeft(seconds) {
    if (seconds == null) return "estimating the time left…";
    if (seconds < 30) return "less than a minute left";
    let minutes = Math.floor(seconds / 60 + 0.5);
    if (minutes < 60) return "about " + minutes + " min left";
    const hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return minutes ? "about " + hours + " h " + minutes + " min left" : "about " + hours + " h left";
  }

  // A run's progress widget (the table's template) from a frame's or body's `progress`.
  function progress(p, duration, extraClass) {
    if (!p) return "";  // a frame of a server without it (during an upgrade)
    const ongoing = p.ongoing;
    const eta = ongoing ? timeLeft(p.seconds_left) : (duration != null ? "took " + humanDuration(duration) : "ended");
    const countdown = ongoing && p.seconds_left != null
      ? fill(TABLE.countdown, { seconds_left: p.seconds_left, running_left: p.running_left }) : "";
    return fill(TABLE.progress, { extra: extraClass ? " " + esc(extraClass) : "", percent: p.percent,
      done: p.done, planned: p.planned, eta: esc(eta), countdown: countdown });
  }

  // Between reports the time left counts down, by at most what the test in progress
  // accounts for (the rest waits for the tests after it).
  function tickProgress() {
    const now = Date.now();
    document.querySelectorAll(".tm-eta[data-seconds-left]").forEach((el) => {
      if (!el.dataset.shownAt) el.dataset.shownAt = now;
      const gone = (now - Number(el.dataset.shownAt)) / 1000;
      const left = Number(el.dataset.secondsLeft) - Math.min(gone, Number(el.dataset.runningLeft));
      el.textContent = timeLeft(Math.max(0, left));
    });
  }
  setInterval(tickProgress, 1000);

  function doneCount(stats) {
    let done = 0;
    Object.keys(stats || {}).forEach((s) => { if (ONGOING.indexOf(s) < 0) done += stats[s]; });
    return done;
  }

  // The one format of every page (static/js/times.js), not the browser's locale.
  function when(iso) {
    return window.Times.exact(iso);
  }

  // Script modal: any element with data-script-url opens it (event delegation, so rows added
  // by live updates work too).
  function setupModal() {
    const dialog = document.getElementById("tm-script-modal");
    if (!dialog) return;
    const title = dialog.querySelector("h2");
    const body = dialog.querySelector(".body");
    document.addEventListener("click", (event) => {
      const button = event.target.closest("[data-script-url]");
      if (button) {
        title.textContent = button.dataset.scriptTitle || "Script";
        body.innerHTML = '<p class="tm-empty">Loading…</p>';
        dialog.showModal();
        fetch(button.dataset.scriptUrl, { credentials: "same-origin" })
          .then((r) => { if (!r.ok) throw new Error(r.status); return r.text(); })
          .then((html) => { body.innerHTML = html; })
          .catch(() => { body.innerHTML = '<p class="tm-empty">Could not load the script.</p>'; });
      }
      if (event.target.closest("[data-close-modal]") || event.target === dialog) dialog.close();
    });
  }
  document.addEventListener("DOMContentLoaded", setupModal);

  // A live row takes a frame only if it is not older than what the row shows: frames of
  // several server processes may arrive out of order (each carries its run's version).
  function fresh(row, version) {
    if (version == null) return true;
    if (Number(row.dataset.version || 0) > version) return false;
    row.dataset.version = version;
    return true;
  }

  // The rows of this page as the server renders them now, for a page whose socket (re)opened
  // and may have missed frames: each row of the page is redrawn from the fresh copy unless it
  // holds a newer version (once a pointer pressed in it is released: window.redraw); returns
  // the fresh rows this page does not have.
  function reloadRows(selector, idAttribute) {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then((html) => {
        const copy = new DOMParser().parseFromString(html, "text/html");
        const missing = [];
        copy.querySelectorAll(selector).forEach((freshRow) => {
          const id = freshRow.getAttribute(idAttribute);
          const row = document.querySelector(selector.split("[")[0] + "[" + idAttribute + '="' + id + '"]');
          if (!row) { missing.push(freshRow); return; }
          if (!fresh(row, Number(freshRow.dataset.version || 0))) return;
          window.redraw(row, () => {
            Object.assign(row.dataset, freshRow.dataset);
            row.innerHTML = freshRow.innerHTML;
          });
        });
        return missing;
      });
  }

  window.TM = { PRIORITY, esc, humanDuration, badge, bar, doneCount, when, fresh, reloadRows,
    timeLeft, progress };
})();
