// Human-readable numbers for the metrics pages.
window.MetricsFormat = {
  ms: function (ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "–";
    if (ms === 0) return "0 ms";
    if (ms < 1) return Math.round(ms * 1000) + " µs";
    if (ms < 100) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  },
  percent: function (rate) {
    if (rate === null || rate === undefined) return "–";
    if (rate === 0) return "0 %";
    if (rate < 0.001) return "<0.1 %";
    return (rate * 100).toFixed(rate < 0.1 ? 1 : 0) + " %";
  },
  count: function (n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(n);
  },
  // The one format of every page (static/js/times.js), not the browser's locale.
  time: function (iso) {
    return window.Times.exact(iso);
  },
};
