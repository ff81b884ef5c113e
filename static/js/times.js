// How every page shows a moment, the same text as plumbing/times.py gives:
// "2026-11-29 06:55:11 UTC" in the site's zone (from <html data-time-zone>, settings.TIME_ZONE),
// not the browser's, so a row a live frame adds reads like the rows the server rendered.
// Relative times (<time data-relative>) are kept fresh every 30 s; their title is the exact time.
//   Times.exact(iso)                    "2026-11-29 06:55:11 UTC"
//   Times.html(iso, {relative: true})   '<time datetime=… title=… data-relative>3 min ago</time>'
(function () {
  "use strict";
  const EMPTY = "—";
  const RELATIVE_LIMIT = 30 * 86400;  // past this age a date says more than "94 d ago"
  const FIELDS = {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                  minute: "2-digit", second: "2-digit", hourCycle: "h23"};

  let zone = document.documentElement.dataset.timeZone || "UTC";
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-US", Object.assign({timeZone: zone}, FIELDS));
  } catch (e) {
    // A zone this browser does not know: UTC, labelled as such, is still a true statement.
    zone = "UTC";
    parts = new Intl.DateTimeFormat("en-US", Object.assign({timeZone: zone}, FIELDS));
  }

  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    const date = value instanceof Date ? value : new Date(value);
    return isNaN(date.getTime()) ? null : date;
  }

  function exact(value, options) {
    const date = toDate(value);
    if (!date) return value === null || value === undefined || value === "" ? EMPTY : String(value);
    const p = {};
    parts.formatToParts(date).forEach((part) => { p[part.type] = part.value; });
    let text = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second;
    if (options && options.ms) text += "." + String(date.getUTCMilliseconds()).padStart(3, "0");
    return text + " " + zone;
  }

  function relative(value, now) {
    const date = toDate(value);
    if (!date) return exact(value);
    const seconds = ((now === undefined ? Date.now() : toDate(now).getTime()) - date.getTime()) / 1000;
    const age = Math.abs(seconds);
    if (age < 10) return "just now";
    if (age >= RELATIVE_LIMIT) return exact(date);
    let amount;
    for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]]) {
      if (age >= size) { amount = Math.floor(age / size) + " " + unit; break; }
    }
    return seconds > 0 ? amount + " ago" : "in " + amount;
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }

  // A <time> element for a moment; options: relative (bool), ms (bool), empty (text for none).
  function element(value, options) {
    options = options || {};
    const date = toDate(value);
    if (!date) return document.createTextNode(value ? String(value) : (options.empty || EMPTY));
    const el = document.createElement("time");
    el.dateTime = date.toISOString();
    el.title = exact(date);
    if (options.relative) el.dataset.relative = "";
    el.textContent = options.relative ? relative(date) : exact(date, options);
    return el;
  }

  function html(value, options) {
    const node = element(value, options);
    return node.nodeType === Node.TEXT_NODE ? esc(node.textContent) : node.outerHTML;
  }

  function refresh(root) {
    const now = Date.now();
    (root || document).querySelectorAll("time[data-relative]").forEach((el) => {
      const text = relative(el.getAttribute("datetime"), now);
      if (el.textContent !== text) el.textContent = text;
    });
  }

  setInterval(refresh, 30000);
  // A tab woken from the background, or a page restored from the back-forward cache, is stale.
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  window.addEventListener("pageshow", () => refresh());

  window.Times = {zone, exact, relative, element, html, refresh};
})();
