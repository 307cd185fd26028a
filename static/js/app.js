/* Small behaviours that the templates declare with data attributes. The Content-Security-Policy
   runs scripts from our own static files only: no inline handlers (onclick=...), no hx-on, no
   style="" attributes. Every handler is delegated from the document, so content that htmx swaps
   in works without being set up again. */
(function () {
  "use strict";

  // <form data-confirm="Question?">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : event.target.parentElement;
    if (!target) return;
    // <button data-require-checked="ids" data-empty-message="...">: refuse with a message when
    // no checkbox of that name is checked.
    var guarded = target.closest("[data-require-checked]");
    if (guarded) {
      var name = guarded.getAttribute("data-require-checked");
      if (!document.querySelector('input[name="' + name + '"]:checked')) {
        event.preventDefault();
        window.alert(guarded.getAttribute("data-empty-message"));
        return;
      }
    }
    // <input type="checkbox" data-check-all="ids">: check or clear every checkbox of that name.
    var all = target.closest("[data-check-all]");
    if (all) {
      var boxes = document.querySelectorAll('input[name="' + all.getAttribute("data-check-all") + '"]');
      boxes.forEach(function (box) { box.checked = all.checked; });
    }
  });

  // <select data-autosubmit>: submit its form when the choice changes.
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-autosubmit]")) {
      event.target.form.submit();
    }
  });

  // <div data-refresh-after-swap="#selector">: after htmx swaps content inside it, send the
  // "refresh" event to that element (e.g. recount the segment preview after the builder changed).
  document.addEventListener("htmx:afterSwap", function (event) {
    var host = event.target.closest && event.target.closest("[data-refresh-after-swap]");
    if (host && window.htmx) {
      window.htmx.trigger(host.getAttribute("data-refresh-after-swap"), "refresh");
    }
  });

  // <div data-width="42">: the width of a progress bar in percent (set here, not in a style="").
  function applyWidths(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var bars = Array.prototype.slice.call(scope.querySelectorAll("[data-width]"));
    if (scope.matches && scope.matches("[data-width]")) bars.push(scope);
    bars.forEach(function (bar) {
      var value = parseFloat(bar.getAttribute("data-width"));
      if (isFinite(value)) bar.style.width = Math.max(0, Math.min(100, value)) + "%";
    });
  }
  // The shared dialog (templates/components/dialog.html): content swapped into #app-dialog-content
  // opens it; an HX-Trigger "dialog-close" or content marked [data-dialog-autoclose] closes it.
  function dialog() {
    var element = document.getElementById("app-dialog");
    return element && window.bootstrap ? window.bootstrap.Modal.getOrCreateInstance(element) : null;
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.target || event.target.id !== "app-dialog-content") return;
    var modal = dialog();
    if (!modal) return;
    modal.show();
    var focus = event.target.querySelector("[autofocus], select, input:not([type=hidden]), textarea");
    if (focus) focus.focus();
    if (event.target.querySelector("[data-dialog-autoclose]")) {
      window.setTimeout(function () { modal.hide(); }, 1500);
    }
  });
  document.body.addEventListener("dialog-close", function () {
    var modal = dialog();
    if (modal) modal.hide();
  });

  // A long <select data-searchable> (time zones by city) gets a search box above it that hides the
  // options whose text and value do not contain what is typed; the chosen option always stays.
  function searchableSelects(scope) {
    var selects = scope.querySelectorAll ? scope.querySelectorAll("select[data-searchable]") : [];
    Array.prototype.forEach.call(selects, function (select) {
      if (select.dataset.searchReady) return;
      select.dataset.searchReady = "1";
      var box = document.createElement("input");
      box.type = "search";
      box.className = "form-control form-control-sm mb-1";
      box.placeholder = select.getAttribute("data-search-label") || "";
      box.setAttribute("aria-label", box.placeholder);
      box.setAttribute("aria-controls", select.id);
      box.maxLength = 50;
      select.parentNode.insertBefore(box, select);
      box.addEventListener("input", function () {
        var words = box.value.trim().toLowerCase();
        Array.prototype.forEach.call(select.options, function (option) {
          var text = (option.text + " " + option.value).toLowerCase();
          option.hidden = !!words && !option.selected && text.indexOf(words) === -1;
        });
      });
    });
  }

  applyWidths(document);
  searchableSelects(document);
  document.addEventListener("htmx:load", function (event) {
    applyWidths(event.target);
    searchableSelects(event.target);
  });

  // Tables on a phone (static/css/app.css, .table-cards): every body cell gets its column's header
  // as data-label, shown before the value when the table is drawn as cards. A table wider than its
  // box on a phone becomes cards (.table-cards-auto), unless it is a matrix (.table-matrix).
  var PHONE = window.matchMedia ? window.matchMedia("(max-width: 575.98px)") : null;
  function headerLabels(table) {
    var head = table.tHead && table.tHead.rows.length ? table.tHead.rows[table.tHead.rows.length - 1] : null;
    var labels = [];
    if (!head) return labels;
    Array.prototype.forEach.call(head.cells, function (cell) {
      var text = (cell.innerText || cell.textContent || "").replace(/\s+/g, " ").trim();
      for (var i = 0; i < (cell.colSpan || 1); i++) labels.push(text);
    });
    return labels;
  }
  function labelCells(table) {
    var labels = headerLabels(table);
    if (!labels.length) return;
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var index = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          var label = labels[index];
          if (cell.colSpan === 1 && label && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", label);
          if (cell.querySelector("input[type=checkbox]") && !(cell.innerText || "").trim()) cell.classList.add("cell-select");
          index += cell.colSpan || 1;
        });
      });
    });
  }
  // A cell whose text is broken into three or more lines of a few characters (Chinese breaks after
  // any character): the table only fits by squeezing a column, so it is clearer as cards.
  function squeezed(table) {
    var range = document.createRange();
    return Array.prototype.some.call(table.querySelectorAll("thead th, tbody td, tbody th, tfoot td, tfoot th"), function (cell) {
      var text = (cell.innerText || "").replace(/\s+/g, "");
      // A cell of buttons stacks them, one per line: that is not squeezed text.
      if (text.length < 4 || cell.querySelector(".btn, form")) return false;
      // Lines of text: the distinct tops of the text's own boxes, tops within 4 px being one line.
      var tops = [];
      var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        if (!walker.currentNode.textContent.trim()) continue;
        range.selectNodeContents(walker.currentNode);
        Array.prototype.forEach.call(range.getClientRects(), function (rect) {
          var seen = tops.some(function (top) { return Math.abs(top - rect.top) < 4; });
          if (rect.width > 0 && !seen) tops.push(rect.top);
        });
      }
      return tops.length >= 3 && text.length / tops.length < 5;
    });
  }
  function fitTables() {
    var phone = PHONE && PHONE.matches;
    document.querySelectorAll("main table").forEach(function (table) {
      if (table.classList.contains("table-matrix")) return;
      labelCells(table);
      if (!phone) {
        if (table.getAttribute("data-cards") === "auto") table.classList.remove("table-cards");
        return;
      }
      if (table.classList.contains("table-cards") || !table.getClientRects().length) return;
      var box = table.parentElement;
      if (table.scrollWidth > box.clientWidth + 1 || squeezed(table)) {
        table.classList.add("table-cards");
        table.setAttribute("data-cards", "auto");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", fitTables);
  // Again once the icon font and images are in: they change the widths measured above.
  window.addEventListener("load", fitTables);
  if (document.fonts && document.fonts.ready) document.fonts.ready.then(fitTables);
  document.addEventListener("htmx:afterSettle", fitTables);
  if (PHONE && PHONE.addEventListener) PHONE.addEventListener("change", fitTables);

  // <form data-shown-when-checked="ids" hidden>: shown while a checkbox of that name is checked;
  // <span data-checked-count="ids" data-template="Selected: __n__">: how many are.
  function showWhenChecked() {
    document.querySelectorAll("[data-shown-when-checked]").forEach(function (element) {
      var name = element.getAttribute("data-shown-when-checked");
      var checked = document.querySelectorAll('input[name="' + name + '"]:checked').length;
      element.hidden = checked === 0;
      element.querySelectorAll("[data-checked-count]").forEach(function (counter) {
        counter.textContent = (counter.getAttribute("data-template") || "__n__").replace("__n__", String(checked));
      });
    });
  }
  // <select data-action-fields="#form">: in that form, a field marked data-for-action="a b" is shown
  // (and submitted) only while the select's value is one of those actions.
  function showActionFields(select) {
    var form = document.querySelector(select.getAttribute("data-action-fields"));
    if (!form) return;
    form.querySelectorAll("[data-for-action]").forEach(function (field) {
      var wanted = field.getAttribute("data-for-action").split(/\s+/).indexOf(select.value) !== -1;
      field.hidden = !wanted;
      field.disabled = !wanted;
    });
  }
  function setUpSelections() {
    showWhenChecked();
    document.querySelectorAll("select[data-action-fields]").forEach(showActionFields);
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.matches) return;
    if (target.matches("input[type=checkbox]")) showWhenChecked();
    if (target.matches("select[data-action-fields]")) showActionFields(target);
  });
  document.addEventListener("click", function (event) {
    if (event.target.matches && event.target.matches("[data-check-all]")) showWhenChecked();
  });
  document.addEventListener("DOMContentLoaded", setUpSelections);
  document.addEventListener("htmx:afterSettle", showWhenChecked);

  // <form data-drop-empty>: a GET form that sends only the fields with a value, so the address
  // carries the filters in use and not twenty empty parameters (plain submit and htmx alike).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-drop-empty") || event.defaultPrevented) return;
    var emptied = [];
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && !field.disabled && field.type !== "checkbox" && field.type !== "radio" &&
          field.type !== "submit" && field.type !== "button" && String(field.value).trim() === "") {
        field.disabled = true;
        emptied.push(field);
      }
    });
    window.setTimeout(function () { emptied.forEach(function (field) { field.disabled = false; }); }, 0);
  });
  document.addEventListener("htmx:configRequest", function (event) {
    var source = event.detail.elt;
    var form = source && source.closest ? (source.closest("form") || (source.form || null)) : null;
    if (source && source.getAttribute && source.getAttribute("hx-include")) {
      form = document.querySelector(source.getAttribute("hx-include")) || form;
    }
    if (!form || !form.hasAttribute("data-drop-empty") || event.detail.verb !== "get") return;
    var data = event.detail.formData;
    if (data && data.keys) {
      var keys = [];
      data.forEach(function (value, key) { if (keys.indexOf(key) === -1) keys.push(key); });
      keys.forEach(function (key) {
        var kept = data.getAll(key).filter(function (value) { return String(value).trim() !== ""; });
        data.delete(key);
        kept.forEach(function (value) { data.append(key, value); });
      });
    } else {
      var params = event.detail.parameters;
      Object.keys(params).forEach(function (key) {
        if (String(params[key]).trim() === "") delete params[key];
      });
    }
  });

  // <input data-choice-filter> inside [data-choice-picker]: show only the choices whose label
  // (data-choice-label, lower case) contains what was typed. A search box for long lists of
  // checkboxes (the segment builder's "is any of"), so nobody needs Ctrl-click on a <select multiple>.
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-choice-filter]")) return;
    var needle = box.value.trim().toLowerCase();
    var picker = box.closest("[data-choice-picker]");
    picker.querySelectorAll("[data-choice-label]").forEach(function (item) {
      item.classList.toggle("d-none", needle !== "" && item.getAttribute("data-choice-label").indexOf(needle) === -1);
    });
  });
})();
