// mxping: latency from the visitor's own network, as the guide's widget measured it. For each
// server row, once it scrolls into view: four requests one second apart to the server's
// federation /version address, each shown with its time. The page is complete without this.
(function () {
  'use strict';
  var cells = document.querySelectorAll('.browser[data-url]');
  var table = document.getElementById('servers');
  if (!cells.length || !table || !window.fetch) return;
  // Settings and words shared by every row live on the table.
  function setting(name) { return table.getAttribute('data-' + name); }

  function measure(cell) {
    var url = cell.getAttribute('data-url');
    var green = Number(setting('green')) || 200;
    var slots = cell.querySelectorAll('.p');
    var i = 0;
    cell.setAttribute('data-state', 'running');

    function show(ms, ok) {
      var slot = slots[i];
      var word, cls;
      if (!ok) { cls = 'red'; word = setting('unavailable'); }
      else if (ms < green) { cls = 'green'; word = setting('fast'); }
      else { cls = 'yellow'; word = setting('slow'); }
      // The status badges' shapes (a circle, a triangle, a cross), so colour is not the only
      // sign; all three are in every system font (no colour-emoji font needed). The page's rule
      // for latencies: whole milliseconds, "< 1 ms" below one. A failed ping shows the cross
      // alone (a word would not fit in both languages); the tooltip and the accessible name say
      // it in words.
      var mark = { green: '\u25CF', yellow: '\u25B2', red: '\u00D7' }[cls];
      slot.textContent = ok ? mark + ' ' + (ms < 1 ? '< 1' : Math.round(ms)) + ' ms' : mark;
      slot.setAttribute('aria-label', ok ? slot.textContent + ' (' + word + ')' : word);
      slot.className = 'p ' + cls;
      slot.setAttribute('data-ms', ok ? String(ms) : '');
      slot.title = word;
      i += 1;
      if (i >= slots.length) cell.setAttribute('data-state', 'done');
    }

    function one() {
      var started = performance.now();
      var abort = window.AbortController ? new AbortController() : null;
      var timer = abort ? setTimeout(function () { abort.abort(); }, 10000) : null;
      // no-cors: the answer itself is not read, only when it arrives; no CORS needed.
      fetch(url, { mode: 'no-cors', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
                   signal: abort ? abort.signal : undefined })
        .then(function () { return true; }, function () { return false; })
        .then(function (ok) {
          if (timer) clearTimeout(timer);
          var elapsed = performance.now() - started;
          show(elapsed, ok);
          if (i < slots.length) setTimeout(one, Math.max(0, 1000 - elapsed));
        });
    }
    one();
  }

  if ('IntersectionObserver' in window) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { seen.unobserve(e.target); measure(e.target); }
      });
    });
    Array.prototype.forEach.call(cells, function (c) { seen.observe(c); });
  } else {
    Array.prototype.forEach.call(cells, measure);
  }
})();
