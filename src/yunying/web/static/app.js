// yunying: small vanilla JS for partial page updates (HTMX-style) and the charts — no CDN.
// A form with data-target="#id" is sent with fetch; the HTML answer replaces the target.
// Charts: each <div class="echart"> is followed by <script type="application/json"
// class="echart-option"> holding the ECharts option built on the server (web/charts.py);
// ECharts itself is /static/vendor/echarts/echarts.min.js.
(function () {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  function initCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("script.echart-option").forEach(function (src) {
      var el = src.previousElementSibling;
      if (!el || !el.classList.contains("echart") || echarts.getInstanceByDom(el)) return;
      var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
      var chart = echarts.init(el, null, { renderer: "canvas", locale: zh ? "ZH" : "EN" });
      chart.setOption(JSON.parse(src.textContent));
      el.dataset.ready = "1";
      if (window.ResizeObserver) new ResizeObserver(function () { chart.resize(); }).observe(el);
    });
  }
  function disposeCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll(".echart").forEach(function (el) {
      var c = echarts.getInstanceByDom(el);
      if (c) c.dispose();
    });
  }
  window.addEventListener("resize", function () {
    if (!window.echarts) return;
    document.querySelectorAll(".echart").forEach(function (el) {
      var c = echarts.getInstanceByDom(el);
      if (c) c.resize();
    });
  });
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
      var html = await resp.text();
      disposeCharts(target);
      target.innerHTML = html;
      initCharts(target);
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
  initCharts(document);
  // Forms marked data-auto run once when the page opens.
  document.querySelectorAll("form[data-auto]").forEach(function (f) { submit(f, null); });
})();
