// Times in the reader's own zone and language (backstop/web/local_times.py writes them).
// Every <time data-local-time="absolute|precise|relative" datetime="...Z"> on the page, and any a script adds later,
// is rewritten with the browser's Intl: "14:30, 14 Mar" in its zone, or "in 12 seconds" / "3 minutes ago" for a
// relative one within a day. Relative ones are drawn again every second. The server's text (in UTC, saying so) stays
// where this script never runs. No dependency; served by the project at /local-times.js.
(() => {
  "use strict";
  const WITHIN_SECONDS = 24 * 3600; // beyond a day, the date and time read better than "9 months ago"
  const EVERY_MS = 1000;
  const short = {hour: "2-digit", minute: "2-digit", day: "numeric", month: "short"};
  const formats = {
    absolute: new Intl.DateTimeFormat(undefined, short),
    precise: new Intl.DateTimeFormat(undefined, {...short, second: "2-digit"}),
  };
  const full = new Intl.DateTimeFormat(undefined, {dateStyle: "full", timeStyle: "long"});
  const relative = new Intl.RelativeTimeFormat(undefined, {numeric: "auto"});
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function words(seconds) {
    const [unit, size] = units.find(([, size]) => Math.abs(seconds) >= size) || ["second", 1];
    return relative.format(Math.round(seconds / size), unit);
  }

  function draw(element) {
    const at = new Date(element.dateTime);
    if (Number.isNaN(at.getTime())) return;
    const style = element.dataset.localTime;
    const seconds = Math.round((at.getTime() - Date.now()) / 1000);
    let text;
    if (style === "relative" && Math.abs(seconds) < WITHIN_SECONDS) {
      text = words(seconds);
    } else {
      // A sentence may read "at 14:30" where the relative form reads "in 12 seconds": the server names the word.
      text = (element.dataset.localTimePrefix || "") + (formats[style] || formats.absolute).format(at);
    }
    if (element.textContent !== text) element.textContent = text;
    if (!element.dataset.localTimeTitled) {
      element.title = full.format(at);
      element.dataset.localTimeTitled = "1";
    }
  }

  function show(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(draw);
  }

  // The twin of the server's |local_time_in: a catalogue's sentence naming a moment as "[at ]HH:MM:SS UTC", as
  // nodes with that moment a relative <time> (for pages that draw such a sentence again from the API's answer).
  function localTimeIn(text, iso) {
    const at = iso ? new Date(iso) : null;
    if (!at || Number.isNaN(at.getTime())) return [text];
    const utc = at.toISOString().slice(11, 19) + " UTC";
    let start = text.indexOf("at " + utc);
    let found = "at " + utc;
    if (start < 0) {
      start = text.indexOf(utc);
      found = utc;
    }
    if (start < 0) return [text];
    const element = document.createElement("time");
    element.dateTime = at.toISOString().replace(/\.\d{3}Z$/, "Z");
    element.dataset.localTime = "relative";
    if (found !== utc) element.dataset.localTimePrefix = "at ";
    element.textContent = found;
    draw(element);
    return [text.slice(0, start), element, text.slice(start + found.length)];
  }

  window.showLocalTimes = show;
  window.localTimeIn = localTimeIn;
  show();
  // Pages that draw part of themselves again (the setup steps, the desk's search results) are caught here.
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.nodeType !== 1) continue;
        if (node.matches("time[data-local-time]")) draw(node);
        else show(node);
      }
    }
  }).observe(document.documentElement, {childList: true, subtree: true});
  setInterval(() => document.querySelectorAll('time[data-local-time="relative"]').forEach(draw), EVERY_MS);
})();
