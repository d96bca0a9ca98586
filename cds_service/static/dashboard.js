// Governance dashboard charts (plotly.js, served locally). Data: the JSON island #chart-data,
// computed by cds_service/report.py chart_data(). No inline script: the page's CSP forbids it.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };
  var margin = { l: 60, r: 20, t: 10, b: 60 };

  // Labels come from feedback bodies: plotly renders a few HTML-like tags in text, so escape.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function empty(id, message) {
    var el = document.getElementById(id);
    el.innerHTML = "";
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    el.appendChild(p);
    el.setAttribute("data-rendered", "empty");
  }

  function plot(id, traces, layout) {
    var el = document.getElementById(id);
    return Plotly.newPlot(el, traces, layout, config).then(function () {
      el.setAttribute("data-rendered", "chart");
    });
  }

  if (data.cards_per_day.length) {
    plot("chart-cards-per-day", data.cards_per_day.map(function (s) {
      return { type: "bar", name: plain(s.topic), x: s.days, y: s.counts };
    }), { barmode: "stack", margin: margin, legend: { orientation: "h", y: -0.25 },
          xaxis: { type: "date", tickformat: "%Y-%m-%d" }, yaxis: { title: { text: "cards" }, rangemode: "tozero" } });
  } else {
    empty("chart-cards-per-day", "No cards shown in this period.");
  }

  if (data.override_rate.length) {
    plot("chart-override-rate", [{
      type: "bar",
      x: data.override_rate.map(function (r) { return plain(r.topic); }),
      y: data.override_rate.map(function (r) { return r.rate; }),
      text: data.override_rate.map(function (r) { return r.overridden + " / " + r.answered; }),
      textposition: "outside",
      marker: { color: "#d9822b" }
    }], { margin: margin, yaxis: { title: { text: "overridden / answered" }, tickformat: ".0%", range: [0, 1.15] } });
  } else {
    empty("chart-override-rate", "No feedback in this period.");
  }

  if (data.override_reasons.length) {
    var topics = [];
    data.override_reasons.forEach(function (r) { if (topics.indexOf(r.topic) < 0) topics.push(r.topic); });
    plot("chart-override-reasons", topics.map(function (topic) {
      var rows = data.override_reasons.filter(function (r) { return r.topic === topic; });
      return {
        type: "bar", orientation: "h", name: plain(topic),
        y: rows.map(function (r) { return plain(r.label); }),
        x: rows.map(function (r) { return r.count; })
      };
    }), { barmode: "stack", margin: { l: 260, r: 20, t: 10, b: 40 }, legend: { orientation: "h", y: -0.2 },
          yaxis: { automargin: true, autorange: "reversed" }, xaxis: { title: { text: "overrides" }, dtick: 1 } });
  } else {
    empty("chart-override-reasons", "No override reasons in this period.");
  }
})();
