// The personal API tokens page: copy a new token, confirm a revoke, and forget the secret.
(function () {
  "use strict";

  // The page that shows a new token answered a POST: make its history entry a plain GET of the
  // list, so that a reload or coming back shows the list (not the secret) and makes no token.
  if (document.querySelector("[data-new-token]") && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    var state = button.parentNode.querySelector(".copy-state");
    function done(text) { if (state) { state.textContent = text; } }
    button.addEventListener("click", function () {
      field.focus();
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(
          function () { done("Copied."); },
          function () { done(document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy."); });
      } else {  // plain HTTP: the clipboard API is for secure pages only
        done(document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy.");
      }
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
})();
