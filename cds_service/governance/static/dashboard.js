// Governance dashboard charts (plotly.js, served locally). Data: the JSON island #chart-data,
// computed by cds_service/report.py chart_data(). No inline script: the page's CSP forbids it.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };
  // One colour per topic on every chart (the topics come sorted from the report).
  var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  function colour(topic) {
    var index = data.topics.indexOf(topic);
    return palette[(index < 0 ? data.topics.length : index) % palette.length];
  }

  // Labels come from feedback bodies: plotly renders a few HTML-like tags in text, so escape.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function empty(id, message) {
    var el = document.getElementById(id);
    el.textContent = "";
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

  var legend = { orientation: "h", y: -0.2, traceorder: "normal" };

  // A count axis: whole numbers only. With small counts plotly would tick at 0.5 and the "d"
  // format would label them "0 0 1 1 2"; one tick per unit up to 10, plotly's own (whole) steps above.
  function countAxis(title, counts) {
    var axis = { title: { text: title }, rangemode: "tozero", tickformat: ",d" };
    if (Math.max.apply(null, counts.concat([0])) <= 10) { axis.tick0 = 0; axis.dtick = 1; }
    return axis;
  }

  if (data.cards_per_day.length) {
    plot("chart-cards-per-day", data.cards_per_day.map(function (s) {
      return { type: "bar", name: plain(s.topic), x: s.days, y: s.counts, marker: { color: colour(s.topic) } };
    }), { barmode: "stack", margin: { l: 50, r: 10, t: 10, b: 40 }, legend: legend,
          xaxis: { type: "date", tickformat: "%Y-%m-%d" },
          yaxis: countAxis("decisions with a card shown", data.cards_per_day.reduce(function (sums, s) {
            s.counts.forEach(function (n, i) { sums[i] = (sums[i] || 0) + n; });
            return sums;
          }, [])) });
  } else {
    empty("chart-cards-per-day", "No cards shown in this period.");
  }

  if (data.override_rate.length) {
    plot("chart-override-rate", [{
      type: "bar", orientation: "h",
      y: data.override_rate.map(function (r) { return plain(r.topic); }),
      x: data.override_rate.map(function (r) { return r.rate; }),
      text: data.override_rate.map(function (r) { return r.overridden + " / " + r.answered; }),
      textposition: "outside", cliponaxis: false,
      marker: { color: data.override_rate.map(function (r) { return colour(r.topic); }) }
    }], { margin: { l: 10, r: 40, t: 10, b: 50 },
          yaxis: { automargin: true, autorange: "reversed" },
          xaxis: { title: { text: "overridden / answered decisions (latest feedback)" }, tickformat: ".0%", range: [0, 1] } });
  } else {
    empty("chart-override-rate", "No feedback in this period.");
  }

  if (data.override_reasons.length) {
    var topics = data.topics.filter(function (topic) {
      return data.override_reasons.some(function (r) { return r.topic === topic; });
    });
    plot("chart-override-reasons", topics.map(function (topic) {
      var rows = data.override_reasons.filter(function (r) { return r.topic === topic; });
      return {
        type: "bar", orientation: "h", name: plain(topic), marker: { color: colour(topic) },
        y: rows.map(function (r) { return plain(r.label); }),
        x: rows.map(function (r) { return r.count; })
      };
    }), { barmode: "stack", margin: { l: 10, r: 20, t: 10, b: 40 },
          legend: { orientation: "h", y: -0.3, traceorder: "normal" },
          yaxis: { automargin: true, autorange: "reversed" },
          xaxis: countAxis("overridden decisions", Object.values(data.override_reasons.reduce(function (sums, r) {
            sums[r.label] = (sums[r.label] || 0) + r.count;  // the stacked bar of each reason
            return sums;
          }, {}))) });
  } else {
    empty("chart-override-reasons", "No override reasons in this period.");
  }
})();
