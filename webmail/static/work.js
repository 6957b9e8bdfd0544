// Casella webmail: working together on a message (templates/mail/_work.html).
// - presence: every 10 s tell the server "I am viewing" (or "replying", on the compose page)
//   and show who else is on the conversation; say goodbye when the page goes away.
// - the panel's forms are sent in the background and the panel is redrawn; without JS
//   they are plain forms that come back to the message page.
// Include on a page with an element carrying data-presence="/mail/ID/presence" (and, on the
// compose page, data-presence-state="replying").
(function () {
  "use strict";
  if (window.casellaWork) return;  // included twice (page head and panel): run once
  window.casellaWork = true;
  var POLL_MS = 10000;
  function csrf() { return (document.querySelector('meta[name="csrf-token"]') || {}).content || ""; }
  function target() { return document.querySelector("[data-presence]"); }

  function show(others) {
    var list = document.getElementById("presence");
    if (!list) return;
    var card = document.getElementById("presence-card");
    if (card) card.hidden = others.length === 0;
    while (list.firstChild) list.removeChild(list.firstChild);
    others.forEach(function (o) {
      var li = document.createElement("li");
      li.textContent = o.text;
      li.dataset.user = o.username;
      li.className = "presence-" + o.state;
      list.appendChild(li);
    });
  }

  function report(state) {
    var el = target();
    if (!el) return;
    var body = new URLSearchParams({ state: state || el.dataset.presenceState || "viewing", csrf: csrf() });
    fetch(el.dataset.presence, { method: "POST", body: body, credentials: "same-origin",
                                 headers: { "X-CSRF-Token": csrf() } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) show(data.others || []); })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  var timer = null;
  function start() {
    if (!target() || timer) return;
    report();
    timer = setInterval(function () { if (!document.hidden) report(); }, POLL_MS);
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) report(); });
  window.addEventListener("pagehide", function () {
    var el = target();
    if (el && navigator.sendBeacon) {
      navigator.sendBeacon(el.dataset.presence, new URLSearchParams({ state: "leave", csrf: csrf() }));
    }
  });

  function problem(form, text) {
    var box = form.querySelector(".error[role=alert]");
    if (!box) {
      box = document.createElement("p");
      box.className = "error";
      box.setAttribute("role", "alert");
      form.appendChild(box);
    }
    box.textContent = text;
  }

  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-work]");
    if (!form || !window.fetch) return;
    e.preventDefault();
    var data = new URLSearchParams(new FormData(form, e.submitter || undefined));
    var focused = document.activeElement && document.activeElement.id;
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin",
                         headers: { "X-CSRF-Token": csrf(), "X-Partial": "work" } })
      .then(function (r) {
        return r.text().then(function (html) {
          if (r.ok && r.url.indexOf(form.action) === 0) {
            var panel = document.getElementById("work-panel");
            if (panel) panel.outerHTML = html;
            var again = focused && document.getElementById(focused);
            if (again) again.focus();
            report();
            return;
          }
          if (r.ok || r.redirected) { window.location = r.url; return; }  // e.g. moved out of sight
          var doc = new DOMParser().parseFromString(html, "text/html");
          var alert = doc.querySelector("[role=alert]");
          problem(form, (alert ? alert.textContent : html).trim() || ("HTTP " + r.status));
        });
      })
      .catch(function () { form.submit(); });
  });

  // Suggestions while typing in the panel's tag, pratica and link fields (input[data-suggest]):
  // fetched from /work/suggest, not written into every page (an office has thousands of names).
  var suggestTimer = null, suggestSeq = 0;
  function suggest(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list || !window.fetch) return;
    // Tags are a comma-separated list: suggest for the last one, keep the ones before it.
    var cut = input.dataset.suggest === "tags" ? input.value.lastIndexOf(",") + 1 : 0;
    var before = cut ? input.value.slice(0, cut) + " " : "";
    var params = new URLSearchParams({ list: input.dataset.suggest, q: input.value.slice(cut).trim() });
    var kind = input.form && input.form.querySelector("input[name=kind]:checked");
    if (kind) params.set("kind", kind.value);
    var seq = ++suggestSeq;
    fetch("/work/suggest?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (names) {
        if (seq !== suggestSeq) return;  // an older answer, overtaken by newer typing
        while (list.firstChild) list.removeChild(list.firstChild);
        names.forEach(function (name) {
          var option = document.createElement("option");
          option.value = before + name;
          list.appendChild(option);
        });
      })
      .catch(function () {});
  }
  function suggestSoon(e) {
    var input = e.target;
    if (!input.dataset || !input.dataset.suggest) return;
    if (suggestTimer) clearTimeout(suggestTimer);
    suggestTimer = setTimeout(function () { suggest(input); }, e.type === "focusin" ? 0 : 150);
  }
  document.addEventListener("input", suggestSoon);
  document.addEventListener("focusin", suggestSoon);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
