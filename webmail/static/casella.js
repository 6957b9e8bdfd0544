// Casella webmail: a few lines of vanilla JS. Everything works without it; this adds
// keyboard shortcuts, clickable rows, "older messages" without reloading, the phone menu.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  window.casella = { csrf: csrf, post: function (url, data) {
    var body = new URLSearchParams(data || {}); body.set("csrf", csrf);
    return fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  } };

  document.addEventListener("click", function (e) {
    var toggle = e.target.closest(".nav-toggle");
    if (toggle) {
      var open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var more = e.target.closest("a[data-more]");
    if (more) {
      e.preventDefault();
      var row = more.closest("tr");
      fetch(more.href, { headers: { "X-Partial": "rows" }, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { row.insertAdjacentHTML("afterend", html); row.remove(); });
      return;
    }
    var tr = e.target.closest("tr[data-href]");
    if (tr && !e.target.closest("a, input, button, label")) { window.location = tr.dataset.href; }
  });

  document.addEventListener("change", function (e) {
    if (e.target.matches("select[data-navigate]")) { window.location = e.target.value; }
  });

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.msg")); }
  function move(step) {
    var all = rows(); if (!all.length) return;
    var i = all.findIndex(function (r) { return r.classList.contains("cursor"); });
    if (i >= 0) all[i].classList.remove("cursor");
    i = Math.max(0, Math.min(all.length - 1, i + step));
    all[i].classList.add("cursor"); all[i].scrollIntoView({ block: "nearest" });
  }
  function click(selector) { var el = document.querySelector(selector); if (el) { el.click(); return true; } return false; }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    var cur = document.querySelector("tr.msg.cursor");
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": case "o": if (cur) window.location = cur.dataset.href; else return; break;
      case "x": if (cur) { var box = cur.querySelector("input[type=checkbox]"); if (box) box.checked = !box.checked; } break;
      case "/": var q = document.getElementById("q"); if (q) { q.focus(); q.select(); } break;
      case "c": window.location = "/compose"; break;
      case "u": case "Escape": if (!click("a[data-back]")) return; break;
      case "r": if (!click("a[data-shortcut=reply]")) return; break;
      case "a": if (!click("a[data-shortcut=reply-all]")) return; break;
      case "f": if (!click("a[data-shortcut=forward]")) return; break;
      case "?": var help = document.getElementById("shortcuts"); if (help) help.hidden = !help.hidden; break;
      default: return;
    }
    e.preventDefault();
  });
})();
