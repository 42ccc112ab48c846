// orderflow console: the only script. Elements with data-refresh="<url>"
// are replaced every data-every seconds (default 5) by the fragment that
// url returns; elements with data-check-all toggle the checkboxes named by
// it. Nothing else runs in the page.
(function () {
  "use strict";
  function refresh(el) {
    var every = parseInt(el.getAttribute("data-every") || "5", 10) * 1000;
    var url = el.getAttribute("data-refresh");
    function tick() {
      if (el.getAttribute("data-refresh") === "") { return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Fragment": "1" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          el.innerHTML = html;
          var stop = el.querySelector("[data-done]");
          if (stop) { el.setAttribute("data-refresh", ""); return; }
          setTimeout(tick, every);
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("[data-check-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      var name = box.getAttribute("data-check-all");
      document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (c) {
        c.checked = box.checked;
      });
    });
  });
})();
