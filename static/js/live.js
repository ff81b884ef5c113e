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

// A live page redraws parts of itself as changes arrive. A part redrawn between a pointer's press
// and its release inside it is gone, and with it the click that the release would have made (a
// link, a button, a row that opens its detail). window.redraw(element, draw) runs draw() at once,
// unless a pointer is pressed inside element: then the latest draw of that element waits for the
// release and runs just after the click.
//   redraw(row, () => { row.innerHTML = cells(run); });
(function () {
  let pressed = null;  // what the pointer went down on, until it is released
  const held = new Map();  // element -> its latest draw, waiting for the release

  // The main button only, and not on a form field: a right-click's menu and a select's list may
  // take the release, which would keep the part waiting until the next click (live parts redraw
  // no form field).
  document.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || event.target.closest("select, input, textarea, label")) return;
    pressed = event.target;
  }, true);
  function released() {
    if (!pressed) return;
    pressed = null;
    // After the click the release makes (dispatched in the same task as the release).
    setTimeout(() => {
      if (pressed) return;  // pressed again meanwhile: the next release runs them
      const draws = Array.from(held.values());
      held.clear();
      draws.forEach((draw) => draw());
    }, 0);
  }
  document.addEventListener("pointerup", released, true);
  document.addEventListener("pointercancel", released, true);  // also when a drag starts
  window.addEventListener("blur", released);  // released in another window

  window.redraw = function (element, draw) {
    if (pressed && element && element.contains(pressed)) { held.set(element, draw); return; }
    held.delete(element);
    draw();
  };
})();
