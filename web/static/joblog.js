// The job page's live build log: follows the job's event stream (/jobs/<id>/events, Server-
// Sent Events as BinderHub's build API sends them), appends each line to the log, marks the
// phase in the progress list, and reloads the page once the job has ended (ready or failed)
// to show its outcome.
// Without JavaScript the page refreshes itself instead (<noscript> in its head); when the
// stream cannot be read, this script falls back to the same.
"use strict";
(function () {
  var log = document.getElementById("build-log");
  var refreshes = document.getElementById("refreshes");
  var tries = 0;
  // Mark `phase` as the current step of the progress list, and those before it as done.
  function showPhase(phase) {
    var steps = document.querySelectorAll("ol.phases li:not(.failed)");
    var names = Array.prototype.map.call(steps, function (step) { return step.textContent; });
    var at = names.indexOf(phase);
    if (at < 0) {
      return;
    }
    Array.prototype.forEach.call(steps, function (step, index) {
      step.className = index < at ? "done" : "";
      if (index === at) {
        step.setAttribute("aria-current", "step");
      } else {
        step.removeAttribute("aria-current");
      }
    });
  }
  function reloadSoon() {
    window.setTimeout(function () { window.location.reload(); }, 3000);
  }
  if (!log || !log.dataset.events) {
    return;
  }
  if (!window.EventSource) {
    reloadSoon();
    return;
  }
  var source = new EventSource(log.dataset.events);
  if (refreshes) {
    refreshes.textContent = "The build log below follows the job as it goes.";
  }
  source.onopen = function () {
    tries = 0;
  };
  source.onmessage = function (message) {
    var data;
    try {
      data = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (data.phase === "ready" || data.phase === "failed") {
      source.close();
      window.location.reload();
      return;
    }
    if (data.message) {
      var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      log.appendChild(document.createTextNode(
        (log.textContent && !log.textContent.endsWith("\n") ? "\n" : "") + data.message));
      if (atBottom) {
        log.scrollTop = log.scrollHeight;
      }
    }
    if (data.job_phase) {
      showPhase(data.job_phase);
    }
  };
  source.onerror = function () {
    tries += 1;
    // The stream ends every few minutes and the browser connects again by itself; give up
    // after a few failed tries in a row (a proxy that buffers, the server gone).
    if (source.readyState === EventSource.CLOSED || tries > 3) {
      source.close();
      reloadSoon();
    }
  };
}());
