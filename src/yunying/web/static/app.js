// yunying: small vanilla JS for partial page updates (HTMX-style) — no library, no CDN.
// A form with data-target="#id" is sent with fetch; the HTML answer replaces the target.
(function () {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  async function submit(form, ev) {
    var target = document.querySelector(form.dataset.target);
    if (!target) return;
    if (ev) ev.preventDefault();
    target.setAttribute("aria-busy", "true");
    target.classList.add("loading");
    try {
      var resp = await fetch(form.action, {
        method: form.method || "POST",
        body: new FormData(form),
        headers: { "X-CSRF-Token": csrf(), "X-Partial": "1" },
        credentials: "same-origin",
      });
      target.innerHTML = await resp.text();
    } catch (e) {
      target.textContent = String(e);
    } finally {
      target.removeAttribute("aria-busy");
      target.classList.remove("loading");
    }
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form instanceof HTMLFormElement && form.dataset.target) submit(form, ev);
  });
  // Sliders: show their value and re-run their form after a short pause.
  var timer = null;
  document.addEventListener("input", function (ev) {
    var el = ev.target;
    if (!(el instanceof HTMLInputElement) || el.type !== "range") return;
    var out = document.getElementById(el.id + "-value");
    if (out) out.textContent = el.value;
    var form = el.form;
    if (form && form.dataset.target) {
      clearTimeout(timer);
      timer = setTimeout(function () { submit(form, null); }, 250);
    }
  });
  // Forms marked data-auto run once when the page opens.
  document.querySelectorAll("form[data-auto]").forEach(function (f) { submit(f, null); });
})();
