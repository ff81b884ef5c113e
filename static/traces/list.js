// The trace list: the service filter as a picker of the services the server knows
// (/api/traces/services/), and the scatter of the matching traces' durations over time, each
// dot a link to its trace. Names are client data: written with textContent and DOM APIs only.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  // --- the service picker ----------------------------------------------------------------------

  const form = document.getElementById("trace-filters");
  const input = form && form.querySelector("input[name=service]");
  if (input) {
    fetch(form.dataset.services, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then((response) => response.ok ? response.json() : Promise.reject(response.status))
      .then((body) => {
        const select = document.createElement("select");
        select.name = input.name;
        select.id = input.id;
        if (input.getAttribute("aria-invalid")) select.setAttribute("aria-invalid", input.getAttribute("aria-invalid"));
        const names = body.services.slice();
        // A value typed into the URL that no trace has (yet) stays chosen, as typed.
        if (input.value && !names.includes(input.value)) names.unshift(input.value);
        select.appendChild(new Option("any", ""));
        for (const name of names) select.appendChild(new Option(name, name));
        select.value = input.value;
        // The first page of the new selection, in the same sort (the form's hidden field).
        select.addEventListener("change", () => form.requestSubmit());
        input.replaceWith(select);
      })
      .catch(() => {});  // the text field stays: the filter works without the list
  }

  // --- the scatter -----------------------------------------------------------------------------

  const plot = document.getElementById("scatter-plot");
  const data = document.getElementById("trace-points");
  if (!plot || !data) return;
  const points = JSON.parse(data.textContent);

  function human(s) {
    if (s === 0) return "0 s";
    if (s < 1e-3) return Math.round(s * 1e6) + " µs";
    if (s < 1) return +(s * 1e3).toPrecision(3) + " ms";
    if (s < 60) return +s.toPrecision(3) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    return +(s / 3600).toPrecision(3) + " h";
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const key in attributes) node.setAttribute(key, attributes[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // An end of the time axis: the exact time in the site's zone (window.Times, as every page
  // writes times) on two lines, the date and time, then the zone.
  function timeLabel(chart, x, y, ms, anchor, withMs) {
    const text = window.Times.exact(new Date(ms), {ms: withMs});
    const cut = text.lastIndexOf(" ");
    const label = svg("text", {x, y, "text-anchor": anchor, class: "scatter-label"});
    label.appendChild(svg("tspan", {x}, text.slice(0, cut)));
    label.appendChild(svg("tspan", {x, dy: "1.1em"}, text.slice(cut + 1)));
    chart.appendChild(label);
  }

  function draw() {
    const width = Math.max(plot.clientWidth, 300), height = 196;
    const left = 64, right = 14, top = 10, bottom = 40;
    let x0 = Math.min(...points.map((p) => p.at)), x1 = Math.max(...points.map((p) => p.at));
    if (x1 - x0 < 1000) { x0 -= 500; x1 += 500; }  // one moment: spread a second around it
    const y1 = Math.max(...points.map((p) => p.seconds)) * 1.08 || 1;
    const x = (at) => left + ((at - x0) / (x1 - x0)) * (width - left - right);
    const y = (s) => top + (1 - s / y1) * (height - top - bottom);
    const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                              "aria-label": "Trace durations over time"});
    for (let i = 0; i <= 3; i++) {
      const value = (y1 * i) / 3, at = y(value);
      chart.appendChild(svg("line", {x1: left, x2: width - right, y1: at, y2: at, class: "scatter-grid"}));
      chart.appendChild(svg("text", {x: left - 6, y: at + 4, "text-anchor": "end", class: "scatter-label"}, human(value)));
    }
    timeLabel(chart, left, height - 20, x0, "start", x1 - x0 < 10000);
    timeLabel(chart, width - right, height - 20, x1, "end", x1 - x0 < 10000);
    // Errors last, so they are drawn on top.
    const ordered = points.slice().sort((a, b) => (a.errors > 0) - (b.errors > 0));
    for (const point of ordered) {
      const link = svg("a", {href: "/traces/" + encodeURIComponent(point.ref) + "/", class: "scatter-link",
                             "aria-label": (point.name || "(unnamed)") + ", " + point.duration});
      link.dataset.ref = point.ref;
      const dot = svg("circle", {cx: x(point.at).toFixed(1), cy: y(point.seconds).toFixed(1), r: 5,
                                 class: "scatter-dot" + (point.errors ? " error" : "")});
      dot.appendChild(svg("title", {}, (point.name || "(unnamed)") + " · " + point.duration +
        (point.errors ? " · " + point.errors + " span" + (point.errors === 1 ? "" : "s") + " in error" : "") +
        " · " + window.Times.exact(new Date(point.at), {ms: true})));
      link.appendChild(dot);
      chart.appendChild(link);
    }
    plot.replaceChildren(chart);
  }

  draw();
  let timer = null;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(draw, 150); });
})();
