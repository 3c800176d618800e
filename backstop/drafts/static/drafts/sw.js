// Backstop's service worker: keeps a copy of every editor page (a page the server marks "Backstop-Offline: keep") and
// of the drafts script, and shows them when the server cannot be reached, so that a reload during an outage still
// shows the editor, with the text the page keeps on this device. Everything else goes to the network untouched.
"use strict";

const VERSION = "backstop-drafts-1";
const PAGES = `${VERSION}-pages`;
const ASSETS = `${VERSION}-assets`;
const ASSET_URLS = ["/drafts/drafts.js"];
const SCOPE_URL = "/__backstop-drafts-scope";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(ASSETS).then((cache) => cache.addAll(ASSET_URLS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => !n.startsWith(VERSION)).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

function pageKey(url) {
  const key = new URL(url);
  key.hash = "";
  return key.href;
}

// The copies belong to whoever was signed in: another person's first page (or signing out) drops them.
async function noteWhoseCopies(response) {
  const scope = response.headers.get("Backstop-Drafts-Scope");
  if (!scope) return;
  const assets = await caches.open(ASSETS);
  const known = await assets.match(SCOPE_URL);
  if (known && (await known.text()) === scope) return;
  await caches.delete(PAGES);
  await assets.put(SCOPE_URL, new Response(scope));
}

async function keepIfEditor(url, response) {
  await noteWhoseCopies(response);
  if (response.ok && response.headers.get("Backstop-Offline") === "keep") {
    await (await caches.open(PAGES)).put(pageKey(url), response.clone());
    return true;
  }
  return false;
}

async function keptPage(url) {
  const pages = await caches.open(PAGES);
  return (await pages.match(pageKey(url))) || pages.match(pageKey(url), { ignoreSearch: true });
}

async function page(request) {
  try {
    const response = await fetch(request);
    if (response.status >= 500) return (await keptPage(request.url)) || response;
    await keepIfEditor(request.url, response);
    return response;
  } catch (err) {
    return (await keptPage(request.url)) || Response.error();
  }
}

async function asset(request) {
  const assets = await caches.open(ASSETS);
  try {
    const response = await fetch(request);
    if (response.ok) await assets.put(request.url, response.clone());
    return response;
  } catch (err) {
    return (await assets.match(request.url, { ignoreSearch: true })) || Response.error();
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate") event.respondWith(page(request));
  else if (ASSET_URLS.includes(url.pathname)) event.respondWith(asset(request));
});

// A page loaded before this worker controlled it asks for its own copy; the answer says whether one is kept.
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep" || !event.ports[0]) return;
  event.waitUntil((async () => {
    let kept = Boolean(await keptPage(data.url));
    if (!kept) {
      try {
        kept = await keepIfEditor(data.url, await fetch(data.url, { credentials: "same-origin" }));
      } catch (err) {
        kept = false;
      }
    }
    event.ports[0].postMessage({ kept });
  })());
});
