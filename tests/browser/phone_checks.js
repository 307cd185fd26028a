// The page checks of test_phone_width.py, run in the page by Playwright (one object of functions).
({
  // What the page offers to tap: buttons, page links, tabs and the collapsed navigation's toggler. Links
  // inside running text and table cells are not tap targets of their own here (the row's cells are).
  smallTapTargets: (min) => {
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      const s = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
    };
    const selector = [
      'nav.navbar .navbar-toggler', 'nav.navbar .nav-link', 'nav.navbar .btn',
      'main .btn', 'main .page-link', 'main .nav-tabs .nav-link', 'main .nav-pills .nav-link',
    ].join(',');
    return [...document.querySelectorAll(selector)].filter(visible)
      .filter((el) => !el.closest('.dropdown-menu, .modal:not(.show), .collapse:not(.show), [hidden]'))
      .map((el) => ({h: el.getBoundingClientRect().height, w: el.getBoundingClientRect().width,
                    text: (el.innerText || el.getAttribute('aria-label') || el.className).trim().slice(0, 40)}))
      .filter((t) => t.h < min - 0.5 || t.w < min - 0.5);
  },

  pageOverflow: () => {
    const doc = document.documentElement;
    if (doc.scrollWidth <= doc.clientWidth) return null;
    // Name the widest offenders, to say what to fix.
    const culprits = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
      .filter((el) => !el.closest('.table-responsive, .overflow-auto, .overflow-x-auto'))
      .slice(0, 5)
      .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
           (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') +
           ' right=' + Math.round(el.getBoundingClientRect().right));
    return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, culprits};
  },

  // Text squeezed into a column too narrow for it: Chinese breaks after any character, so a squeezed
  // tab or table cell reads one or two characters per line (生/命/周/期), rows grow ~300 px tall.
  squeezedText: () => {
    // Lines of text: the distinct tops of the text's own boxes (element boxes left out), tops within
    // 4 px counted as one line.
    const lines = (el) => {
      const tops = [];
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      const range = document.createRange();
      while (walker.nextNode()) {
        if (!walker.currentNode.textContent.trim()) continue;
        range.selectNodeContents(walker.currentNode);
        for (const rect of range.getClientRects()) {
          if (rect.width > 0 && !tops.some((top) => Math.abs(top - rect.top) < 4)) tops.push(rect.top);
        }
      }
      return tops.length;
    };
    const out = [];
    for (const el of document.querySelectorAll('main .nav-link, main .btn, main th, main td, main .badge, main dt, main dd')) {
      const text = (el.innerText || '').trim();
      if (text.length < 4 || !el.getClientRects().length || el.closest('.table-cards > thead')) continue;
      // A cell of buttons stacks them, one per line: that is not squeezed text.
      if (el.matches('td, th') && el.querySelector('.btn, form')) continue;
      const n = lines(el);
      if (n >= 3 && text.replace(/\s+/g, '').length / n < 5) out.push(`${el.tagName.toLowerCase()} "${text.slice(0, 20)}" in ${n} lines`);
    }
    return out.slice(0, 5);
  },

  // A key figure (money, counts) broken across lines ("¥172,370." / "90").
  brokenFigures: () => {
    const out = [];
    for (const el of document.querySelectorAll('main .stat-card .value, main .card .value[data-figure]')) {
      if (!el.getClientRects().length) continue;
      const range = document.createRange();
      range.selectNodeContents(el);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      const card = el.closest('.card') || el.parentElement;
      if (tops.size > 1 && (el.innerText || '').trim().length <= 16) out.push(`"${el.innerText.trim()}" on ${tops.size} lines`);
      else if (el.getBoundingClientRect().right > card.getBoundingClientRect().right + 1) out.push(`"${el.innerText.trim()}" sticks out of its card`);
    }
    return out.slice(0, 5);
  },

  // A data table wider than its box scrolls sideways inside the page: on a phone a table must keep its
  // key columns within the width or become cards (.table-cards). A matrix (heatmap, cohort grid) may
  // scroll inside its own box: it is marked .table-matrix.
  sidewaysTables: () => {
    const out = [];
    for (const table of document.querySelectorAll('main table')) {
      if (!table.getClientRects().length || table.closest('.table-matrix') || table.matches('.table-matrix')) continue;
      const box = table.parentElement;
      if (table.scrollWidth > box.clientWidth + 1 || table.getBoundingClientRect().right > document.documentElement.clientWidth + 1) {
        out.push((table.id || table.dataset.testid || table.className) + ' ' + Math.round(table.scrollWidth) + '>' + box.clientWidth);
      }
    }
    return out.slice(0, 5);
  },

  // A customer's phone number (as formatted for reading) shown as text outside a tel: link.
  unlinkedPhones: (phones) => {
    const compact = (text) => text.replace(/[\s\u00a0-]/g, '');
    const wanted = phones.map(compact);
    const out = [];
    const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      const parent = node.parentElement;
      if (!parent || parent.closest('a[href^="tel:"], input, textarea, select, option, script, style')) continue;
      const text = compact(node.textContent);
      const hit = wanted.find((phone) => phone.length >= 7 && text.includes(phone));
      if (hit) out.push(hit);
    }
    return out.slice(0, 5);
  },
})
