// Opens a live socket for a page and keeps it open: reconnects with backoff (capped at 3 s, so a
// page catches up within seconds after the server or Redis comes back) and shows the state in
// an element with class "live-indicator" when the page has one.
//   openLive("/ws/machine/status/", (frame) => { ... }, {onOpen: () => refetch()});
(function () {
  function setIndicator(state, text) {
    document.querySelectorAll(".live-indicator").forEach((el) => {
      el.classList.remove("connected", "reconnecting");
      if (state) el.classList.add(state);
      el.textContent = text;
    });
  }

  window.openLive = function (path, onFrame, options) {
    options = options || {};
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let delay = 250;
    let socket = null;
    let stopped = false;

    function connect() {
      socket = new WebSocket(scheme + window.location.host + path);
      socket.onopen = function () {
        delay = 250;
        setIndicator("connected", "Live");
        if (options.onOpen) options.onOpen();
      };
      socket.onmessage = function (event) {
        let frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        onFrame(frame);
      };
      socket.onclose = function (event) {
        if (stopped) return;
        if (event.code === 4003) { setIndicator(null, "Not live: log in to follow updates"); return; }
        setIndicator("reconnecting", "Reconnecting…");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 3000);
      };
    }
    connect();
    return { close: function () { stopped = true; if (socket) socket.close(); } };
  };
})();
