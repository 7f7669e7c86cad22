// A light touch: confirm before resolving, warn when a manual reading is far from
// the expected value or below the last one.
(function () {
  "use strict";
  // inline handlers are not allowed by the pages' Content-Security-Policy
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  document.querySelectorAll("[data-back]").forEach(function (el) {
    el.addEventListener("click", function (ev) { ev.preventDefault(); history.back(); });
  });
  document.querySelectorAll("[data-print]").forEach(function (el) {
    el.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll("form.resolve").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      var c = f.querySelector("input[name=comment]");
      if (!c.value.trim()) { ev.preventDefault(); c.focus(); }
    });
  });
  // the relay's second confirmation (the first is the tick on the confirmation page)
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.dataset.confirm)) { ev.preventDefault(); }
    });
  });
  // a command block refreshes itself while one of its commands is under way
  function refresh(el) {
    var url = el.dataset.refreshUrl;
    if (!url) { return; }
    window.setTimeout(function () {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(el.id);
          if (!fresh) { return; }
          el.replaceWith(fresh);
          refresh(fresh);
        });
    }, 2000);
  }
  document.querySelectorAll("[data-refresh-url]").forEach(refresh);
  document.querySelectorAll("input.reading").forEach(function (inp) {
    inp.addEventListener("input", function () {
      var v = parseFloat(inp.value.replace(",", "."));
      var last = parseFloat(inp.dataset.last);
      // the server's own limit: above it a reading needs the confirmation tick
      var above = parseFloat(inp.dataset.confirmAbove);
      var warn = false;
      if (!isNaN(v) && !isNaN(last) && v < last) warn = true;
      if (!isNaN(v) && !isNaN(above) && v > above) warn = true;
      inp.classList.toggle("warn", warn);
    });
  });
})();
