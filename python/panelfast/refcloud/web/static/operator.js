// The operator page's one script: drag across a plot to zoom into that time range.
// Everything else works without it (the range form and the zoom links).
"use strict";

(function () {
  function plotX(svg, event) {
    var point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    return point.matrixTransform(svg.getScreenCTM().inverse()).x;
  }

  function attach(svg) {
    var x0 = Number(svg.dataset.x0), x1 = Number(svg.dataset.x1);
    var from = Number(svg.dataset.from), to = Number(svg.dataset.to);
    var selection = svg.querySelector(".selection");
    var start = null;

    function clamp(x) { return Math.min(Math.max(x, x0), x1); }
    function instant(x) { return Math.round(from + (clamp(x) - x0) * (to - from) / (x1 - x0)); }

    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) { return; }
      start = clamp(plotX(svg, event));
      svg.setPointerCapture(event.pointerId);
      selection.setAttribute("x", start);
      selection.setAttribute("width", 0);
      selection.setAttribute("visibility", "visible");
      event.preventDefault();
    });
    svg.addEventListener("pointermove", function (event) {
      if (start === null) { return; }
      var x = clamp(plotX(svg, event));
      selection.setAttribute("x", Math.min(start, x));
      selection.setAttribute("width", Math.abs(x - start));
    });
    function finish(event) {
      if (start === null) { return; }
      var end = clamp(plotX(svg, event));
      var a = Math.min(start, end), b = Math.max(start, end);
      start = null;
      selection.setAttribute("visibility", "hidden");
      if (b - a < 4) { return; }  // a click, not a drag
      var start_ms = instant(a), end_ms = instant(b);
      if (end_ms - start_ms >= 10000) {  // 10 s or more: whole seconds read better
        start_ms = Math.round(start_ms / 1000) * 1000;
        end_ms = Math.round(end_ms / 1000) * 1000;
      }
      var query = new URLSearchParams(window.location.search);
      query.set("from", start_ms);
      query.set("to", end_ms);
      window.location.search = query.toString();
    }
    svg.addEventListener("pointerup", finish);
    svg.addEventListener("pointercancel", function () {
      start = null;
      selection.setAttribute("visibility", "hidden");
    });
  }

  document.querySelectorAll("svg.plot[data-from]").forEach(attach);
})();
