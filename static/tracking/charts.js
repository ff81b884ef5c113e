// Small line charts in plain SVG: lineChart(svg, points, series, {format}) where series is
// [{key, cls}] and each point has a `start` time and a value under each key (null = no data).
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = {left: 46, right: 6, top: 8, bottom: 30};

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  // An end of the time axis: the exact time on two lines (date and time, then the zone), so that
  // both ends fit a chart a third of the page wide.
  function timeLabel(svg, x, y, iso, anchor) {
    const text = MetricsFormat.time(iso);
    const cut = text.lastIndexOf(" ");
    const label = el("text", {x: x, y: y, "text-anchor": anchor}, svg);
    el("tspan", {x: x}, label).textContent = text.slice(0, cut);
    el("tspan", {x: x, dy: "1.1em"}, label).textContent = text.slice(cut + 1);
  }

  window.lineChart = function (svg, points, series, options) {
    options = options || {};
    const format = options.format || String;
    const width = svg.clientWidth || 400, height = svg.clientHeight || 160;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const plotW = width - PAD.left - PAD.right, plotH = height - PAD.top - PAD.bottom;
    let max = 0;
    points.forEach((p) => series.forEach((s) => { if (p[s.key] > max) max = p[s.key]; }));
    if (options.minMax && max < options.minMax) max = options.minMax;
    if (max === 0) max = 1;
    const x = (i) => PAD.left + (points.length > 1 ? (i * plotW) / (points.length - 1) : plotW / 2);
    const y = (v) => PAD.top + plotH - (v / max) * plotH;
    el("line", {class: "axis", x1: PAD.left, x2: width - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH}, svg);
    el("line", {class: "axis", x1: PAD.left, x2: width - PAD.right, y1: PAD.top, y2: PAD.top, "stroke-dasharray": "2 3"}, svg);
    el("text", {x: PAD.left - 4, y: PAD.top + 4, "text-anchor": "end"}, svg).textContent = format(max);
    el("text", {x: PAD.left - 4, y: PAD.top + plotH, "text-anchor": "end"}, svg).textContent = format(0);
    if (points.length) {
      timeLabel(svg, PAD.left, height - 16, points[0].start, "start");
      timeLabel(svg, width - PAD.right, height - 16, points[points.length - 1].start, "end");
    }
    series.forEach((s) => {
      let path = "", area = "", open = false, first = null, last = null;
      points.forEach((p, i) => {
        const v = p[s.key];
        if (v === null || v === undefined) { open = false; return; }
        path += (open ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        if (first === null) first = i;
        last = i;
        open = true;
      });
      if (!path) return;
      if (s.fill && first !== null) {
        area = path.replace(/^M/, "M" + x(first).toFixed(1) + " " + y(0) + "L") +
          "L" + x(last).toFixed(1) + " " + y(0) + "Z";
        el("path", {d: area, class: "area " + s.cls}, svg);
      }
      const line = el("path", {d: path, class: "line " + s.cls, "data-series": s.key}, svg);
      el("title", {}, line).textContent = s.key;
    });
    // One invisible column per point with a tooltip of its values.
    points.forEach((p, i) => {
      const w = points.length > 1 ? plotW / (points.length - 1) : plotW;
      const hit = el("rect", {x: x(i) - w / 2, y: PAD.top, width: w, height: plotH, fill: "transparent"}, svg);
      el("title", {}, hit).textContent = MetricsFormat.time(p.start) + "\n" +
        series.map((s) => s.key + ": " + format(p[s.key])).join("\n");
    });
  };
})();
