// What a person sees of the server list at one window width: whether the page scrolls sideways,
// which parts of the rows lie outside the window or the page's main column (where a scrolling
// box would hide them), or outside their own cell, and whether each row's sign-up cell is on
// screen; and any character in a row that only a colour-emoji font draws (a machine without one
// shows an empty box). Evaluated in Chromium by tests/it/browser.rs and scripts/e2e at several widths.
(() => {
  const width = window.innerWidth, out = [], cut = [], signup = [], emoji = [];
  const main = document.querySelector('main').getBoundingClientRect();
  const left = Math.max(0, main.left), right = Math.min(width, main.right);
  for (const row of document.querySelectorAll('tr.server')) {
    const name = row.getAttribute('data-server');
    for (const el of [row, ...row.querySelectorAll('td, td *')]) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < left - 0.5 || r.right > right + 0.5)
        out.push(name + ' ' + el.tagName + '.' + el.getAttribute('class') + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
    for (const td of row.querySelectorAll('td'))
      if (td.scrollWidth > td.clientWidth + 1) cut.push(name + ' td.' + td.className + ' ' + td.scrollWidth + ' > ' + td.clientWidth);
    for (const ch of row.textContent)
      if (ch.codePointAt(0) >= 0x1F000 || ch === '\uFE0F') emoji.push(name + ' ' + ch);
    const s = row.querySelector('td.signup'), r = s.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0 && r.left >= left && r.right <= right) || getComputedStyle(s).visibility !== 'visible')
      signup.push(name);
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, rows: document.querySelectorAll('tr.server').length, out, cut, signup, emoji};
})()
