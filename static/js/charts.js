/* The charts of the dashboard and the segmentation pages. Their data comes from a json_script
   element, their translated labels from data attributes of the canvas (no inline script: the
   Content-Security-Policy runs scripts from our static files only). */
/* One palette for every chart, defined here only: 16 colours that stay apart from each other (after
   Kelly's colours of maximum contrast), so a chart of 11 segments draws 11 different lines. A chart's
   datasets take them in order unless a dataset sets its own colour. */
var CRM_PALETTE = [
  "#0067a5", "#f38400", "#008856", "#be0032", "#875692", "#f3c300", "#a1caf1", "#882d17",
  "#8db600", "#e68fac", "#654522", "#604e97", "#f99379", "#848482", "#dcd300", "#2b3d26"
];
if (typeof Chart !== "undefined") {
  Chart.defaults.plugins.colors.enabled = false;
  Chart.register({
    id: "crmPalette",
    beforeUpdate: function (chart) {
      chart.data.datasets.forEach(function (dataset, index) {
        var colour = CRM_PALETTE[index % CRM_PALETTE.length];
        var line = (dataset.type || chart.config.type) === "line";
        if (!dataset.borderColor) dataset.borderColor = colour;
        if (!dataset.backgroundColor) dataset.backgroundColor = line ? colour : colour + "cc";
      });
    }
  });
}

(function () {
  "use strict";

  function json(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  // Dashboard: revenue by month.
  var monthly = document.getElementById("monthly-revenue");
  var rows = json("monthly-data");
  if (monthly && rows) {
    new Chart(monthly, {
      type: "bar",
      data: {
        labels: rows.map(function (r) { return r.month; }),
        datasets: [{label: monthly.dataset.label, data: rows.map(function (r) { return r.revenue; })}]
      },
      options: {plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true}}}
    });
  }

  // CLV: the distribution (a bar opens the customer list of its CLV range) and the holdout check.
  var clv = json("clv-chart-data");
  var histogram = document.getElementById("clv-histogram");
  if (clv && histogram) {
    new Chart(histogram, {
      type: "bar",
      data: {labels: clv.labels, datasets: [{label: histogram.dataset.label, data: clv.counts}]},
      options: {
        plugins: {legend: {display: false}},
        scales: {y: {beginAtZero: true}},
        onClick: function (event, bars) { if (bars.length) window.location.href = clv.links[bars[0].index]; },
        onHover: function (event, bars) { event.native.target.style.cursor = bars.length ? "pointer" : "default"; }
      }
    });
  }
  var holdout = document.getElementById("holdout-chart");
  if (clv && holdout && clv.holdout.length) {
    new Chart(holdout, {
      type: "line",
      data: {
        labels: clv.holdout.map(function (r) { return r.frequency; }),
        datasets: [
          {label: holdout.dataset.labelActual, data: clv.holdout.map(function (r) { return r.actual; })},
          {label: holdout.dataset.labelPredicted, data: clv.holdout.map(function (r) { return r.predicted; }),
           borderDash: [6, 4]}
        ]
      },
      options: {scales: {x: {title: {display: true, text: holdout.dataset.titleX}},
                         y: {beginAtZero: true, title: {display: true, text: holdout.dataset.titleY}}}}
    });
  }

  // Recompute history: customers per segment and per stage over time.
  // The x axis is a linear axis of timestamps (no date adapter is vendored): runs a month apart sit
  // a month apart, ticks and tooltips show the date in the page's language.
  var history = json("history-data");
  var language = document.documentElement.lang || undefined;
  function formatDate(value, withTime) {
    var options = withTime ? {year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"}
                           : {year: "numeric", month: "short", day: "numeric"};
    return new Date(value).toLocaleString(language, options);
  }
  function drawHistory(id, series) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    var times = history.times || [];
    new Chart(canvas, {
      type: "line",
      data: {
        datasets: series.map(function (s) {
          return {label: s.label, tension: 0.2,
                  data: s.data.map(function (y, i) { return {x: times[i], y: y}; })};
        })
      },
      options: {
        parsing: true,
        scales: {
          x: {type: "linear", ticks: {maxTicksLimit: 6, callback: function (value) { return formatDate(value, false); }}},
          y: {beginAtZero: true}
        },
        plugins: {
          legend: {position: "bottom", labels: {boxWidth: 12}},
          tooltip: {callbacks: {title: function (items) { return items.length ? formatDate(items[0].parsed.x, true) : ""; }}}
        }
      }
    });
  }
  if (history) {
    drawHistory("segment-history", history.segments);
    drawHistory("stage-history", history.stages);
  }

  // Reports: average cohort retention by months since the first purchase.
  var cohortLine = document.getElementById("cohort-line");
  var cohortData = json("cohort-line-data");
  if (cohortLine && cohortData) {
    new Chart(cohortLine, {
      type: "line",
      data: {labels: cohortData.labels, datasets: [{label: cohortLine.dataset.label, data: cohortData.shares}]},
      options: {plugins: {legend: {display: false}},
                scales: {x: {title: {display: true, text: cohortLine.dataset.titleX}},
                         y: {beginAtZero: true, max: 100}}}
    });
  }

  // Reports: where customers moved (stacked bars: one bar per starting segment or stage).
  var migrationChart = document.getElementById("migration-chart");
  var migrationData = json("migration-data");
  if (migrationChart && migrationData) {
    new Chart(migrationChart, {
      type: "bar",
      data: {labels: migrationData.labels, datasets: migrationData.datasets},
      options: {indexAxis: "y", responsive: true,
                scales: {x: {stacked: true, beginAtZero: true}, y: {stacked: true}}}
    });
  }

  // Reports overview: revenue per day, week or month, beside the earlier period's (bucket by bucket).
  var revenueChart = document.getElementById("overview-revenue");
  var revenueData = json("overview-revenue-data");
  if (revenueChart && revenueData) {
    var revenueSets = [{label: revenueChart.dataset.labelCurrent, data: revenueData.current, tension: 0.2}];
    if (revenueData.earlier.length) {
      revenueSets.push({label: revenueChart.dataset.labelEarlier, data: revenueData.earlier, tension: 0.2,
                        borderDash: [4, 4]});
    }
    new Chart(revenueChart, {
      type: "line",
      data: {labels: revenueData.labels, datasets: revenueSets},
      options: {interaction: {mode: "index", intersect: false}, scales: {y: {beginAtZero: true}}}
    });
  }
})();

/* Loyalty reports: earn and burn per month (bars) with the liability (line, right axis); the table
   below the chart holds the same figures with links to their members. */
(function () {
  "use strict";
  var element = document.getElementById("loyalty-report-data");
  var canvas = document.getElementById("loyalty-flows");
  if (!element || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(element.textContent);
  var label = canvas.dataset;
  new Chart(canvas, {
    data: {
      labels: data.months,
      datasets: [
        {type: "bar", label: label.labelEarned, data: data.earned, yAxisID: "y"},
        {type: "bar", label: label.labelRedeemed, data: data.redeemed, yAxisID: "y"},
        {type: "bar", label: label.labelExpired, data: data.expired, yAxisID: "y"},
        {type: "bar", label: label.labelAdjusted, data: data.adjusted, yAxisID: "y"},
        {type: "line", label: label.labelLiability, data: data.liability, yAxisID: "money", tension: 0.2}
      ]
    },
    options: {
      scales: {y: {beginAtZero: true}, money: {beginAtZero: true, position: "right", grid: {drawOnChartArea: false}}},
      plugins: {legend: {position: "bottom", labels: {boxWidth: 12}}}
    }
  });
})();

/* Platform console: a company's usage per day over the last 90 days (users, customers and orders,
   storage in MB) on a real time axis of UTC days (a missed day is a gap in time, not a squeezed step). */
(function () {
  "use strict";
  var element = document.getElementById("tenant-usage-data");
  if (!element || typeof Chart === "undefined") return;
  var data = JSON.parse(element.textContent);
  var language = document.documentElement.lang || undefined;
  function day(value) {
    return new Date(value).toLocaleDateString(language, {month: "short", day: "numeric", timeZone: "UTC"});
  }
  var DAY = 86400000;
  var span = data.times.length ? (data.times[data.times.length - 1] - data.times[0]) / DAY : 0;
  var step = DAY * Math.max(1, Math.ceil(span / 5));  // about five dates along the axis
  function draw(id, series, whole) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: {
        datasets: series.map(function (s) {
          return {label: s.label, tension: 0.2, pointRadius: data.times.length > 30 ? 0 : 2,
                  data: s.values.map(function (y, i) { return {x: data.times[i], y: y}; })};
        })
      },
      options: {
        animation: false,
        interaction: {mode: "index", intersect: false},
        scales: {
          // The axis spans the recorded days exactly (a linear axis would round out to "nice" values).
          x: {type: "linear", min: data.times[0], max: data.times[data.times.length - 1],
              ticks: {stepSize: step, callback: function (value) { return day(value); }}},
          y: {beginAtZero: true, ticks: whole ? {precision: 0} : {}}
        },
        plugins: {
          legend: {display: series.length > 1, position: "bottom", labels: {boxWidth: 12}},
          tooltip: {callbacks: {title: function (items) { return items.length ? day(items[0].parsed.x) : ""; }}}
        }
      }
    });
  }
  var users = document.getElementById("usage-users");
  var records = document.getElementById("usage-records");
  var storage = document.getElementById("usage-storage");
  if (users) {
    draw("usage-users", [{label: users.dataset.labelUsers, values: data.users},
                         {label: users.dataset.labelActive, values: data.active_users}], true);
  }
  if (records) {
    draw("usage-records", [{label: records.dataset.labelCustomers, values: data.customers},
                           {label: records.dataset.labelOrders, values: data.orders}], true);
  }
  if (storage) draw("usage-storage", [{label: storage.dataset.labelStorage, values: data.storage_mb}], false);
})();
