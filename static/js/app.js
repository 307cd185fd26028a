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
})();
