// The work happening (issue 20 §2): follows a run the page just triggered (a re-run or Apply now).
//
// Progressive enhancement: without this file the notice still says the run was triggered and links
// it in Airflow. With it, every [data-live] element polls its URL (GET /runs/live, JSON, this
// origin: the page's CSP has connect-src 'self') every 1.5 s and shows the run's state in text
// (textContent only: nothing Airflow says is parsed as HTML) until the run is done or failed.
// Once it is done, the page's own lists ([data-live-refresh] regions with an id) are fetched again
// from this page's URL and swapped in place, so they show what the run wrote and resolved (no reload:
// what was typed elsewhere on the page stays); the pickers inside are attached again (picker.js).
// Loaded by <script src> carrying the page's nonce.
(function () {
  "use strict";
  var EVERY_MS = 1500;

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.setAttribute("data-airflow-link", "");
    return a;
  }

  function show(box, view) {
    box.setAttribute("data-state", view.state || "");
    var parts = [document.createTextNode(view.text || view.state || "")];
    if (view.behind && view.behind.url) {
      parts.push(document.createTextNode(" "));
      parts.push(link(view.behind.url, "Open the run holding the slot"));
    }
    if (view.log_url) {
      parts.push(document.createTextNode(" "));
      parts.push(link(view.log_url, "Open the step's log"));
    }
    var result = view.result;
    if (result) {
      var said = " Written: " + result.written + "; still held: " + result.held;
      if (result.recovered) said += "; recovered " + result.recovered + " / month";
      parts.push(document.createTextNode(said + ". "));
      // The lists below were rendered before the run: offer them as they are now.
      var now = link(window.location.href, "Show the page as it is now");
      now.removeAttribute("data-airflow-link");
      parts.push(now);
    } else if (view.state === "success") {
      parts.push(document.createTextNode(" (The billing run's record is not there yet.)"));
    }
    box.replaceChildren.apply(box, parts);
  }

  // The page as it is now, its [data-live-refresh] regions swapped in; body[data-live-refreshed]
  // says when it is done (or "failed": the link in the line still offers the page as it is).
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var regions = document.querySelectorAll("[data-live-refresh][id]");
        for (var i = 0; i < regions.length; i++) {
          var now = fresh.getElementById(regions[i].id);
          if (now) regions[i].replaceWith(document.importNode(now, true));
        }
        if (window.billingPickers) window.billingPickers(document);
        document.body.setAttribute("data-live-refreshed", "done");
      })
      .catch(function () {
        document.body.setAttribute("data-live-refreshed", "failed");
      });
  }

  function follow(box) {
    var url = box.getAttribute("data-live");
    if (!url || box.hasAttribute("data-live-ready")) return;
    box.setAttribute("data-live-ready", "");
    box.textContent = "Asking Airflow…";
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) throw new Error(body && body.detail ? String(body.detail) : String(response.status));
            return body;
          });
        })
        .then(function (view) {
          show(box, view);
          // A done run with no billing record yet: ask once more for what it wrote.
          if (!view.done || (view.state === "success" && !view.result)) setTimeout(poll, EVERY_MS);
          else refresh();
        })
        .catch(function (error) {
          box.textContent = "The run's state could not be read (" + error.message + "): trying again.";
          setTimeout(poll, EVERY_MS * 2);
        });
    }
    poll();
  }

  var boxes = document.querySelectorAll("[data-live]");
  for (var i = 0; i < boxes.length; i++) follow(boxes[i]);
})();
