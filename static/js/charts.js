// Draw every <div data-chart="ID">, whose figure sits in <script id="ID" type="application/json">.
document.querySelectorAll("[data-chart]").forEach(function (target) {
  var source = document.getElementById(target.dataset.chart);
  if (source && window.Plotly) {
    var figure = JSON.parse(source.textContent);
    Plotly.newPlot(target, figure.data, figure.layout, {responsive: true, displaylogo: false});
  }
});
