// Casella webmail, message page: previews of PDF attachments load only when opened
// (a PDF in a hidden frame would otherwise be fetched, or downloaded, on every visit).
(function () {
  "use strict";
  document.addEventListener("toggle", function (e) {
    var box = e.target;
    if (!box.matches || !box.matches("details.att-preview") || !box.open) return;
    var frame = box.querySelector("iframe[data-src]");
    if (frame && !frame.getAttribute("src")) frame.setAttribute("src", frame.dataset.src);
  }, true);
})();
