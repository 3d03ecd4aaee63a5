// The trainbench HTML report's script: draws every chart spec with vega-embed and every
// sample test image from its pixels, then records on <body> what it drew:
//   data-charts-status  "pending", then "ok" (every chart drew, no error) or "failed"
//   data-charts-drawn   charts drawn;  data-samples-drawn  images drawn
//   data-errors         errors seen (listed in #tb-errors on the page as well)
// so that a headless browser can check a report without reading pixels.
(function () {
  'use strict';
  var body = document.body;
  var errors = 0;
  body.setAttribute('data-charts-status', 'pending');
  body.setAttribute('data-errors', '0');

  function report(message) {
    errors += 1;
    body.setAttribute('data-errors', String(errors));
    var box = document.getElementById('tb-errors');
    if (!box) return;
    box.hidden = false;
    var item = document.createElement('li');
    item.textContent = message;
    box.querySelector('ul').appendChild(item);
  }
  window.addEventListener('error', function (e) {
    report('error: ' + (e.message || e.type));
  });
  window.addEventListener('unhandledrejection', function (e) {
    report('unhandled rejection: ' + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    report('console.error: ' + Array.prototype.join.call(arguments, ' '));
    consoleError.apply(console, arguments);
  };

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : [];
  }

  // Pixels are C x H x W uint8, base64; one channel is grey, three are RGB.
  function drawImage(canvas, shape, base64) {
    var channels = shape[0], height = shape[1], width = shape[2];
    var raw = atob(base64);
    var plane = height * width;
    if (raw.length !== channels * plane) throw new Error('sample image has ' + raw.length + ' bytes, shape says ' + channels * plane);
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext('2d');
    var image = context.createImageData(width, height);
    for (var i = 0; i < plane; i++) {
      var r = raw.charCodeAt(i);
      var g = channels === 3 ? raw.charCodeAt(plane + i) : r;
      var b = channels === 3 ? raw.charCodeAt(2 * plane + i) : r;
      image.data[4 * i] = r;
      image.data[4 * i + 1] = g;
      image.data[4 * i + 2] = b;
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }

  function drawSamples() {
    var drawn = 0;
    readJson('tb-sample-data').forEach(function (grid) {
      var container = document.getElementById(grid.id);
      if (!container) return;
      var name = function (k) {
        return grid.classes && grid.classes[k] !== undefined ? grid.classes[k] : String(k);
      };
      grid.items.forEach(function (item) {
        var cell = document.createElement('div');
        var wrong = item.label !== item.predicted;
        cell.className = 'tb-sample' + (wrong ? ' wrong' : '');
        cell.title = 'test image ' + item.index + ': true ' + name(item.label) + ', predicted ' + name(item.predicted);
        var canvas = document.createElement('canvas');
        try {
          drawImage(canvas, grid.shape, item.pixels);
          drawn += 1;
        } catch (e) {
          report(grid.id + ': ' + e.message);
        }
        var pred = document.createElement('div');
        pred.className = 'pred';
        pred.textContent = name(item.predicted);
        var truth = document.createElement('div');
        truth.className = 'true';
        truth.textContent = wrong ? 'true: ' + name(item.label) : '\u2713 correct';
        cell.appendChild(canvas);
        cell.appendChild(pred);
        cell.appendChild(truth);
        container.appendChild(cell);
      });
    });
    body.setAttribute('data-samples-drawn', String(drawn));
  }

  function finish(drawn, expected) {
    body.setAttribute('data-charts-drawn', String(drawn));
    body.setAttribute('data-charts-status', drawn === expected && errors === 0 ? 'ok' : 'failed');
  }

  function drawCharts() {
    var charts = readJson('tb-chart-specs');
    if (charts.length === 0) return finish(0, 0);
    if (typeof vegaEmbed !== 'function') {
      report('the chart library (vega-embed) is missing from this page');
      return finish(0, charts.length);
    }
    var pending = charts.map(function (chart) {
      var element = document.getElementById(chart.id);
      return vegaEmbed(element, chart.spec, { actions: false, renderer: 'svg' }).then(
        function (result) {
          element.setAttribute('data-drawn', 'true');
          return 1;
        },
        function (error) {
          report(chart.id + ': ' + (error && error.message ? error.message : error));
          return 0;
        });
    });
    Promise.all(pending).then(function (results) {
      finish(results.reduce(function (a, b) { return a + b; }, 0), charts.length);
    });
  }

  try {
    drawSamples();
  } catch (e) {
    report('samples: ' + e.message);
  }
  drawCharts();
})();
