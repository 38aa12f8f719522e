/* provwh web UI: keeps a running workflow's page up to date as its tasks load.
 *
 * The page's <p data-live-src="/api/v1/stream/tasks?workflow_id=...&since=..."> names the
 * stream (Server-Sent Events) of the workflow's tasks loaded since the page was rendered.
 * When an event brings tasks, the page is fetched again (at most once every 2 s) and each
 * part marked data-live="..." (summary and counts, activities, the tasks table and its
 * pager) is replaced by the fresh one: new tasks appear, statuses and counts change, with
 * the page's filters, sort and paging kept. The paragraph says how many task updates came,
 * and carries data-live-state (connecting, open, retrying), data-arrived (task updates
 * received) and data-refreshed (times the page was refreshed). Without JavaScript, or an
 * EventSource, the page stays as the server rendered it; so it does in headless Chromium,
 * which photographs pages (docs/screenshots.py, the tests): a stream never ends, and its
 * virtual time (--virtual-time-budget) would wait for it forever.
 */
(function () {
  "use strict";

  var MIN_GAP_MS = 2000;
  var root = document.querySelector("[data-live-src]");
  if (!root || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  if (/HeadlessChrome/.test(navigator.userAgent)) {
    root.setAttribute("data-live-state", "off");
    return;
  }

  var arrived = 0, refreshed = 0, last = 0, busy = false, again = false, timer = null;

  function say(text) { root.textContent = text; }

  function replaceParts(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var parts = document.querySelectorAll("[data-live]");
    for (var i = 0; i < parts.length; i++) {
      var name = parts[i].getAttribute("data-live");
      var fresh = doc.querySelector('[data-live="' + name + '"]');
      if (fresh) { parts[i].innerHTML = fresh.innerHTML; }
    }
  }

  function refresh() {
    if (busy) { again = true; return; }
    var wait = last + MIN_GAP_MS - Date.now();
    if (wait > 0) {
      if (timer === null) { timer = setTimeout(function () { timer = null; refresh(); }, wait); }
      return;
    }
    busy = true;
    last = Date.now();
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) {
        if (html !== null) {
          replaceParts(html);
          refreshed += 1;
          root.setAttribute("data-refreshed", String(refreshed));
        }
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  root.setAttribute("data-live-state", "connecting");
  var source = new EventSource(root.getAttribute("data-live-src"));
  source.onopen = function () {
    root.setAttribute("data-live-state", "open");
    if (!arrived) { say("Live: this page follows the workflow's tasks as they load."); }
  };
  source.onerror = function () { root.setAttribute("data-live-state", "retrying"); };
  source.addEventListener("tasks", function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (!data.tasks || !data.tasks.length) { return; }
    arrived += data.tasks.length;
    root.setAttribute("data-arrived", String(arrived));
    say("Live: " + arrived + " task update" + (arrived === 1 ? "" : "s") +
        " since this page opened.");
    refresh();
  });
}());
