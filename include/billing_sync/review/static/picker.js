// Type-ahead for the billing review's company pickers (include/billing_sync/review/picker.py).
//
// Progressive enhancement: every picker is a plain GET form whose Search button asks the server for
// the same matches, so the pages work without this file. With it, the matches come while typing:
// the HTML fragment of /mapping/companies (rendered and escaped by the server, the same markup the
// page renders without script) replaces the picker's result list. Loaded by <script src> carrying
// the page's CSP nonce; fetches only from this origin (the page's CSP: connect-src 'self').
(function () {
  "use strict";
  var DELAY_MS = 200;

  function attach(input) {
    var results = document.getElementById(input.getAttribute("data-results"));
    var source = input.getAttribute("data-src");
    var target = input.getAttribute("data-form");
    if (!results || !source || !target) return;
    var timer = null;
    var controller = null;
    var shown = input.value.trim();

    function search() {
      var query = input.value.trim();
      if (query === shown) return;
      shown = query;
      if (controller) controller.abort();
      controller = new AbortController();
      var url = new URL(source, window.location.href);
      url.searchParams.set("q", query);
      url.searchParams.set("form", target);
      fetch(url.toString(), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        signal: controller.signal,
      })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          // Parsed as an inert document: nothing in it runs; its nodes are moved into the page.
          var parsed = new DOMParser().parseFromString(html, "text/html");
          results.replaceChildren.apply(results, Array.prototype.slice.call(parsed.body.childNodes));
        })
        .catch(function (error) {
          if (error && error.name === "AbortError") return;
          shown = null;
          results.textContent = "The search failed: press Search to try again.";
        });
    }

    // data-fill (the overrides form): a match fills the field with "Name #id" instead of submitting,
    // so the rest of the form is still the person's to finish; the server reads the id after "#".
    if (input.hasAttribute("data-fill")) {
      results.addEventListener("click", function (event) {
        var button = event.target.closest("button[name=company_id]");
        if (!button) return;
        event.preventDefault();
        var item = button.closest("li");
        var name = item ? item.getAttribute("data-company-name") || "" : "";
        input.value = (name + " #" + button.value).trim();
        shown = input.value.trim();
        results.replaceChildren();
        input.focus();
      });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, DELAY_MS);
    });
    input.setAttribute("data-picker-ready", "");
  }

  // Every picker under `root` not attached yet; live.js calls it after swapping a region in.
  window.billingPickers = function (root) {
    var inputs = root.querySelectorAll("input[data-picker]:not([data-picker-ready])");
    for (var i = 0; i < inputs.length; i++) attach(inputs[i]);
  };
  window.billingPickers(document);
})();
