// Search as you type: under the top bar's search box (#q) and the search page's own box, a
// dropdown of the first results (GET /search?partial=1, HTML escaped by the server).
// Enter submits the form as usual: the full results page.
(function () {
  "use strict";
  if (window.casellaSearchLive) return; // loaded by base.html and by a page: once is enough
  window.casellaSearchLive = true;
  var DEBOUNCE_MS = 250;
  var MIN_CHARS = 2;

  var style = document.createElement("style");
  style.textContent =
    ".search-live{position:relative}" +
    ".search-dropdown-box{position:absolute;left:0;right:0;top:100%;z-index:30;background:#fff;" +
    "border:1px solid #dde1e8;border-radius:0 0 8px 8px;box-shadow:0 6px 18px rgba(0,0,0,.12);" +
    "max-height:70vh;overflow:auto;padding:4px 10px;min-width:min(100%,320px)}" +
    ".search-dropdown-box ul.hits{list-style:none;margin:0;padding:0}" +
    ".search-dropdown-box li.hit{padding:6px 2px;border-bottom:1px solid #eceff3}" +
    ".search-dropdown-box .meta{display:flex;flex-wrap:wrap;gap:2px 8px;font-size:12px;color:#5d6677}" +
    ".search-dropdown-box .snippet{margin:2px 0 0;font-size:13px}" +
    ".search-dropdown-box mark{background:#fff1a8;color:inherit}" +
    ".search-dropdown-box .all-results{display:block;padding:6px 2px}";
  document.head.appendChild(style);

  function attach(input) {
    var form = input.form;
    if (!form || input.dataset.liveAttached) return;
    input.dataset.liveAttached = "1";
    var holder = input.parentElement;
    holder.classList.add("search-live");
    var box = document.createElement("div");
    box.className = "search-dropdown-box";
    box.id = (input.id || "search") + "-live";
    box.hidden = true;
    box.setAttribute("aria-live", "polite");
    holder.appendChild(box);
    input.setAttribute("aria-controls", box.id);
    input.setAttribute("aria-expanded", "false");
    var timer = null, seq = 0;

    function close() { box.hidden = true; input.setAttribute("aria-expanded", "false"); }

    function fetchNow() {
      timer = null;
      var text = input.value.trim();
      if (text.length < MIN_CHARS) { box.innerHTML = ""; close(); return; }
      var params = new URLSearchParams(new FormData(form));
      params.set("q", input.value);
      params.set("partial", "1");
      params.delete("page");
      var mine = ++seq;
      fetch("/search?" + params.toString(), { credentials: "same-origin", headers: { "X-Partial": "search" } })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) {
          if (mine !== seq) return; // a newer request is on its way
          box.innerHTML = html;
          box.hidden = !html.trim();
          input.setAttribute("aria-expanded", box.hidden ? "false" : "true");
        })
        .catch(function () {});
    }

    input.addEventListener("input", function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(fetchNow, DEBOUNCE_MS);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { close(); }
      if (e.key === "ArrowDown" && !box.hidden) {
        var first = box.querySelector("a");
        if (first) { e.preventDefault(); first.focus(); }
      }
      if (e.key === "Enter") { seq++; close(); } // the form submits: the full results page
    });
    box.addEventListener("keydown", function (e) {
      var links = Array.prototype.slice.call(box.querySelectorAll("a"));
      var i = links.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && i >= 0 && i < links.length - 1) { e.preventDefault(); links[i + 1].focus(); }
      if (e.key === "ArrowUp") { e.preventDefault(); if (i > 0) links[i - 1].focus(); else input.focus(); }
      if (e.key === "Escape") { close(); input.focus(); }
    });
    document.addEventListener("click", function (e) {
      if (!holder.contains(e.target)) close();
    });
    input.addEventListener("focus", function () {
      if (box.innerHTML.trim() && input.value.trim().length >= MIN_CHARS) {
        box.hidden = false; input.setAttribute("aria-expanded", "true");
      }
    });
  }

  function start() {
    var top = document.getElementById("q");
    if (top) attach(top);
    var page = document.getElementById("search-q");
    if (page) attach(page);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
