// Compose: drafts saved as you type, the signature preview follows the From address, and
// "replying" presence on the original while answering. The form works without it.
(function () {
  "use strict";
  var SAVE_AFTER_MS = 2000;
  var PRESENCE_EVERY_MS = 10000;
  var STATE_EVERY_MS = 3000;
  var sentBox = document.getElementById("sent");
  if (sentBox) { followState(sentBox); return; }
  var form = document.getElementById("compose");
  if (!form) return;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var draftField = document.getElementById("draft_id");
  var status = document.getElementById("draft-status");
  var timer = null, saving = false, dirty = false, sending = false;
  var lang = document.documentElement.lang || "it";
  var labels = status ? status.dataset : {};
  var words = { saved: (labels.saved || "Draft saved at") + " ", saving: labels.saving || "Saving…",
                failed: labels.failed || "Draft not saved." };

  var fileInput = document.getElementById("attachments");

  // The formatted editor: a contenteditable box beside the plain textarea. The server
  // sanitises what it sends (webmail/sanitize.py sanitise_composed) and writes the text
  // alternative itself; without JavaScript the textarea is all there is.
  var editor = document.getElementById("editor");
  var bar = document.getElementById("editor-bar");
  var tools = document.getElementById("editor-tools");
  var toggle = document.getElementById("format-html");
  var htmlField = document.getElementById("body_html");
  var textarea = document.getElementById("body");
  var formatted = !!(editor && bar && tools && toggle && htmlField && textarea);

  function textToHtml(text) {
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML.replace(/\r?\n/g, "<br>");
  }

  function showEditor(on) {
    editor.hidden = !on; tools.hidden = !on; textarea.hidden = on;
  }

  function syncEditor() {
    if (!formatted) return;
    if (toggle.checked) { htmlField.value = editor.innerHTML; textarea.value = editor.innerText; }
    else { htmlField.value = ""; }
  }

  if (formatted) {
    bar.hidden = false;
    if (toggle.checked) {
      var initial = document.getElementById("body-html");
      editor.innerHTML = initial ? initial.innerHTML : textToHtml(textarea.value);
      showEditor(true);
    }
    toggle.addEventListener("change", function () {
      if (toggle.checked) { editor.innerHTML = textToHtml(textarea.value); showEditor(true); editor.focus(); }
      else { textarea.value = editor.innerText; showEditor(false); textarea.focus(); }
      syncEditor();
    });
    tools.addEventListener("click", function (e) {
      var button = e.target.closest ? e.target.closest("button[data-cmd]") : null;
      if (!button) return;
      e.preventDefault();
      editor.focus();
      var cmd = button.dataset.cmd, arg = button.dataset.arg || null;
      if (cmd === "createLink") {
        arg = window.prompt(button.dataset.prompt || "https://", "https://");
        if (!arg || !/^(https?:|mailto:|tel:)/i.test(arg.trim())) return;
        arg = arg.trim();
      }
      document.execCommand(cmd, false, arg);
      schedule();
    });
  }

  // A reply opens with the cursor at the top of the message, above the quote; a forward
  // in the To field, which it has yet to fill. A new message or a draft: nothing moves.
  var mode = (form.querySelector('input[name="mode"]') || {}).value;
  var toField = document.getElementById("to");
  if ((mode === "reply" || mode === "reply-all") && !draftField.value) {
    if (formatted && toggle.checked) {
      editor.focus();
      var range = document.createRange();
      range.setStart(editor.firstChild || editor, 0);
      range.collapse(true);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    } else if (textarea) {
      textarea.focus();
      textarea.setSelectionRange(0, 0);
      textarea.scrollTop = 0;
    }
  } else if ((mode === "forward" || mode === "forward-attached") && !draftField.value && toField) {
    toField.focus();
  }

  function fields(withFiles) {
    syncEditor();
    var data = new FormData(form);
    if (!withFiles) data.delete("attachments"); // files are saved once, when chosen
    return data;
  }

  function showUploads(uploads) {
    var list = document.getElementById("uploaded-list");
    var box = document.getElementById("uploaded");
    if (!list || !box || !uploads) return;
    while (list.firstChild) list.removeChild(list.firstChild);
    uploads.forEach(function (u) {
      var label = document.createElement("label");
      var check = document.createElement("input");
      check.type = "checkbox"; check.name = "uploaded"; check.value = u.sha256; check.checked = true;
      label.appendChild(check);
      label.appendChild(document.createTextNode(" " + u.name + " (" + Math.max(1, Math.round(u.size / 1024)) + " KB)"));
      list.appendChild(label);
      list.appendChild(document.createElement("br"));
    });
    box.hidden = uploads.length === 0;
  }

  function save(withFiles) {
    timer = null;
    if (saving) { schedule(); return; }
    saving = true; dirty = false;
    var sendsFiles = withFiles === true && fileInput && fileInput.files.length > 0;
    if (status) status.textContent = words.saving;
    fetch("/compose/draft", { method: "POST", body: fields(sendsFiles), credentials: "same-origin",
                              headers: { "X-CSRF-Token": csrf } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error(body.error || String(r.status));
          return body;
        });
      })
      .then(function (answer) {
        draftField.value = answer.id;
        form.dataset.saved = String(answer.id);
        var here = "/compose?draft=" + encodeURIComponent(answer.id);
        if (window.location.pathname + window.location.search !== here && window.history.replaceState) {
          window.history.replaceState(null, "", here); // reloading the page brings the draft back
        }
        if (sendsFiles) { fileInput.value = ""; showUploads(answer.uploads); }
        if (status) status.textContent = words.saved + new Date().toLocaleTimeString(lang);
      })
      .catch(function (err) {
        dirty = true;
        if (status) status.textContent = words.failed + (err && err.message && err.message.length > 3 ? " " + err.message : "");
      })
      .then(function () { saving = false; });
  }

  function schedule() {
    if (sending) return;
    dirty = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, SAVE_AFTER_MS);
  }

  form.addEventListener("input", function (e) {
    if (e.target.name !== "attachments") schedule();
  });
  form.addEventListener("change", function (e) {
    if (e.target.name === "attachments") { if (timer) clearTimeout(timer); save(true); return; }
    schedule();
    if (e.target.id === "from") preview();
    if (e.target.id === "signature") {
      var box = document.getElementById("signature-preview-box");
      if (box) box.hidden = !e.target.checked;
    }
  });
  form.addEventListener("submit", function (e) {
    var button = e.submitter;
    if (button && button.id === "save-draft") { e.preventDefault(); if (timer) clearTimeout(timer); save(true); return; }
    sending = true;
    syncEditor();
    if (timer) clearTimeout(timer);
  });
  form.addEventListener("keydown", function (e) { // Ctrl+Enter (⌘+Enter) sends
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var send = form.querySelector("button.primary[type=submit]");
      if (send && !send.disabled) { e.preventDefault(); form.requestSubmit(send); }
    }
  });
  window.addEventListener("beforeunload", function () {
    if (dirty && !sending && navigator.sendBeacon) {
      var data = fields(false); data.set("csrf", csrf);
      navigator.sendBeacon("/compose/draft", data);
    }
  });

  function preview() {
    var from = document.getElementById("from");
    var target = document.getElementById("signature-preview");
    if (!from || !target) return;
    fetch("/compose/signature?from=" + encodeURIComponent(from.value), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (text) { target.textContent = text || target.dataset.none || ""; })
      .catch(function () {});
  }

  var source = form.dataset.source;
  var mode = form.dataset.mode;
  if (source && (mode === "reply" || mode === "reply-all")) {
    var ping = function () {
      if (window.casella && window.casella.post) {
        window.casella.post("/mail/" + source + "/presence", { state: "replying" }).catch(function () {});
      }
    };
    ping();
    setInterval(ping, PRESENCE_EVERY_MS);
  }

  function followState(box) {
    var target = document.getElementById("sent-state");
    if (!target) return;
    var tries = 0;
    var poll = function () {
      var state = target.dataset.state;
      if (state === "sent" || state === "failed" || tries++ > 40) return;
      fetch("/compose/sent/" + box.dataset.message + "?format=json", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (answer) { target.dataset.state = answer.state || ""; target.textContent = answer.label; }
          setTimeout(poll, STATE_EVERY_MS);
        })
        .catch(function () {});
    };
    setTimeout(poll, STATE_EVERY_MS);
  }
})();
