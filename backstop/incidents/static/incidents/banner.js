// The incident banner on every app page, for whom it concerns: asks /status/banner.json (answered from a file the
// server writes at each change, so cheap, and while the database is down) with the visitor's banner token, rendered
// into this script's tag by the server, and the page's name when it meets a capability (setup, checkout, contact).
// Shows, updates or removes the banner without a reload. No dependency; served by the project.
(function () {
  "use strict";
  var POLL_MS = __POLL_MS__;
  var banner = null;
  var script = document.currentScript;
  var token = (script && script.getAttribute("data-banner-token")) || "";
  var marker = document.querySelector("[data-incident-page]");
  var page = (marker && marker.getAttribute("data-incident-page")) || "";
  var url = "/status/banner.json" + (page ? "?page=" + encodeURIComponent(page) : "");
  var headers = token ? { "X-Banner-Token": token } : {};

  function render(status) {
    var live = (status && status.live) || [];
    if (!live.length) {
      if (banner) { banner.remove(); banner = null; }
      return;
    }
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "incident-banner";
      banner.id = "incident-banner";
      banner.setAttribute("role", "status");
      var main = document.querySelector("main") || document.body;
      main.insertBefore(banner, main.firstChild);
    }
    banner.textContent = "";
    live.forEach(function (incident) {
      var line = document.createElement("p");
      var latest = incident.updates.length ? incident.updates[0].body : "";
      line.textContent = incident.capability_name + ": " + incident.state_label + ". " + latest + " ";
      var link = document.createElement("a");
      link.href = "/status";
      link.textContent = "Service status";
      line.appendChild(link);
      banner.appendChild(line);
    });
  }

  function poll() {
    fetch(url, { cache: "no-store", credentials: "omit", headers: headers })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) { if (status) { render(status); } })
      .catch(function () { /* the server is unreachable: keep what the banner says */ })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  poll();
})();
