// mxping: times in the reader's own time zone. Every time on a page is a <time> element with
// its moment in UTC; the page written by the server shows it in UTC (said once, at the end),
// and this script, where the browser can, rewrites it in the reader's zone, keeping the UTC
// text as a tooltip.
(function () {
  'use strict';
  if (!window.Intl || !Intl.DateTimeFormat) return;
  var format;
  try {
    format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'
    });
  } catch (e) { return; }
  Array.prototype.forEach.call(document.querySelectorAll('time[datetime]'), function (el) {
    var at = new Date(el.getAttribute('datetime'));
    if (isNaN(at.getTime())) return;
    el.title = el.textContent;
    el.textContent = format.format(at);
    el.setAttribute('data-local', '');
  });
})();
