// Backstop drafts: nobody loses what they typed.
//
// A <form {% draft "kind" id %}> keeps every keystroke on this device at once (IndexedDB, else localStorage) and saves
// it to the server a moment later. Saves are queued on this device and sent in order, each with an id made here
// (the server answers a repeat without applying it again) and the server version it was typed on: the version the
// tab's previous save got, fixed when it is first sent (a save typed on an older version is a conflict, shown to the
// person with both texts). The form itself is sent by this script: when
// the server does not answer, the text stays and one button sends it, once, when the server is back.
// No dependencies; the texts come from the page (drafts/messages.py).
(function () {
  "use strict";
  if (window.backstopDrafts) return;

  const DB_NAME = "backstop-drafts";
  const STORES = ["drafts", "outbox", "sent"];
  const SAVE_AFTER_MS = 800;
  const RETRY_MAX_MS = 5000;
  const TEXT_TYPES = ["text", "email", "search", "url", "tel", "number"];
  const PREFIX = "backstop-drafts:";
  let config = readConfig();
  const T = config.texts;
  const tabId = sessionStorage.getItem(PREFIX + "tab") || newId();
  sessionStorage.setItem(PREFIX + "tab", tabId);
  const editors = new Map();
  let saveTimer = null;
  let retryMs = 1000;
  let offline = false;
  let flushing = null;
  let seq = Date.now();

  function readConfig() {
    const element = document.getElementById("backstop-drafts-config");
    return element ? JSON.parse(element.textContent) : config;
  }

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
  }

  function age(ms) {
    const minutes = Math.floor(Math.max(0, Date.now() - ms) / 60000);
    if (minutes < 1) return T.ageNow;
    if (minutes < 60) return fill(T.ageMinutes, { n: minutes });
    if (minutes < 1440) return fill(T.ageHours, { n: Math.floor(minutes / 60) });
    return fill(T.ageDays, { n: Math.floor(minutes / 1440) });
  }

  // --- This device's store: IndexedDB, else localStorage, else memory (and the status says so) ---------------------

  function openIndexedDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => STORES.forEach((name) => request.result.createObjectStore(name));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  function idbStore(db) {
    const run = (name, mode, act) => new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const request = act(tx.objectStore(name));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
    return {
      durable: true,
      get: (name, id) => run(name, "readonly", (s) => s.get(id)),
      put: (name, id, value) => run(name, "readwrite", (s) => s.put(value, id)),
      del: (name, id) => run(name, "readwrite", (s) => s.delete(id)),
      all: (name) => run(name, "readonly", (s) => s.getAll()),
    };
  }

  function webStorageStore() {
    const memory = new Map();
    let durable = true;
    try { localStorage.setItem(PREFIX + "probe", "1"); localStorage.removeItem(PREFIX + "probe"); }
    catch (err) { durable = false; }
    const keyOf = (name, id) => `${PREFIX}${name}:${id}`;
    const read = (k) => JSON.parse((durable ? localStorage.getItem(k) : memory.get(k)) || "null") || undefined;
    return {
      durable,
      get: async (name, id) => read(keyOf(name, id)),
      put: async (name, id, value) => {
        const text = JSON.stringify(value);
        if (durable) localStorage.setItem(keyOf(name, id), text); else memory.set(keyOf(name, id), text);
      },
      del: async (name, id) => { if (durable) localStorage.removeItem(keyOf(name, id)); else memory.delete(keyOf(name, id)); },
      all: async (name) => {
        const keys = durable ? Object.keys(localStorage) : Array.from(memory.keys());
        return keys.filter((k) => k.startsWith(keyOf(name, ""))).map(read);
      },
    };
  }

  const store = (window.indexedDB ? openIndexedDb().then(idbStore) : Promise.reject(new Error("no IndexedDB")))
    .catch(() => webStorageStore());

  async function db(method, ...args) { return (await store)[method](...args); }

  // --- Talking to the server ------------------------------------------------------------------------------------------

  async function request(url, options, timeoutMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      return await fetch(url, { credentials: "same-origin", ...options, signal: controller.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  function api(surface, method, body) {
    const headers = { "X-CSRFToken": config.csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return request(config.api + encodeURIComponent(surface), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    }, method === "GET" ? 4000 : 10000);
  }

  async function serverIsUp() {
    try { return (await request(config.api + "ping", { cache: "no-store" }, 3000)).status === 204; }
    catch (err) { return false; }
  }

  // --- One editor: a form that opted in ---------------------------------------------------------------------------------

  class Editor {
    constructor(form) {
      this.form = form;
      this.surface = form.dataset.draft;
      this.scope = form.dataset.draftScope;
      this.key = `${this.scope}|${this.surface}`;
      this.version = 0; // the server version this tab's text builds on
      this.pending = null; // the queued save not sent yet, still open to more typing
      this.conflict = null;
      this.prompting = false;
      this.sending = false;
      this.status = document.createElement("p");
      this.status.className = "draft-status";
      this.status.setAttribute("role", "status");
      this.status.setAttribute("aria-live", "polite");
      this.status.dataset.draftStatus = "";
      this.panel = document.createElement("div");
      this.panel.className = "draft-panel";
      this.panel.dataset.draftPanel = "";
      this.panel.hidden = true;
      form.prepend(this.panel);
      form.append(this.status);
      let marker = form.querySelector("input[name=draft_surface]");
      if (!marker) {
        marker = Object.assign(document.createElement("input"), { type: "hidden", name: "draft_surface" });
        form.append(marker);
      }
      marker.value = this.surface;
      this.keyInput = form.querySelector("[data-draft-submission-key]");
      if (this.keyInput) this.keyInput.value = newId();
      form.addEventListener("input", () => this.typed());
      form.addEventListener("submit", (event) => this.submit(event));
    }

    fields() {
      return Array.from(this.form.elements).filter((el) => el.name && !el.hasAttribute("data-draft-skip")
        && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && TEXT_TYPES.includes(el.type))));
    }

    values() {
      const values = {};
      this.fields().forEach((el) => { values[el.name] = el.value; });
      return values;
    }

    fill(values) {
      this.fields().forEach((el) => { if (el.name in values) el.value = values[el.name]; });
    }

    same(values) {
      const mine = this.values();
      return Object.keys(mine).every((name) => (values[name] || "") === mine[name]);
    }

    setStatus(state, text) {
      this.status.dataset.state = state;
      this.status.textContent = text;
    }

    lock(locked) {
      this.fields().forEach((el) => { el.readOnly = locked; });
      this.form.querySelectorAll("button[type=submit], button:not([type])").forEach((b) => { b.disabled = locked; });
    }

    showPanel(text, buttons, extra, problem) {
      this.panel.replaceChildren();
      const p = document.createElement("p");
      p.textContent = text;
      this.panel.append(p);
      if (extra) this.panel.append(extra);
      buttons.forEach(([label, act, name]) => {
        const b = Object.assign(document.createElement("button"), { type: "button", textContent: label });
        b.className = "secondary";
        b.dataset.draftAction = name;
        b.addEventListener("click", act);
        this.panel.append(b);
      });
      this.panel.classList.toggle("problem", Boolean(problem));
      this.panel.hidden = false;
    }

    hidePanel() { this.panel.hidden = true; this.panel.replaceChildren(); }

    record(values) {
      return { key: this.key, scope: this.scope, surface: this.surface, fields: values, updatedAt: Date.now(),
               tab: tabId, version: this.version };
    }

    async typed() {
      if (this.sending) return;
      const values = this.values();
      try {
        await db("put", "drafts", this.key, this.record(values));
      } catch (err) {
        this.setStatus("error", fill(T.notSaved, { why: T.whyNoStorage }));
      }
      if (this.conflict || this.prompting) return; // the person chooses first; this device keeps the text meanwhile
      await this.queue(values);
      this.setStatus(offline ? "offline" : "saving", offline ? T.savedOnDevice : T.saving);
      if (!(await store).durable && offline) this.setStatus("error", fill(T.notSaved, { why: T.whyNoStorage }));
      scheduleSave(SAVE_AFTER_MS);
    }

    // A save not yet sent takes more typing; once sent (its answer may be lost) it stays as it was, and the next
    // save follows it, on the version it gets.
    async queue(values) {
      if (this.pending) {
        this.pending.fields = values;
      } else {
        this.pending = { saveId: newId(), key: this.key, scope: this.scope, surface: this.surface, tab: tabId,
                         base: null, attempted: false, seq: seq++, fields: values };
      }
      await db("put", "outbox", this.pending.saveId, this.pending);
    }

    async setVersion(version) {
      this.version = version;
      await setChain(tabId, this.key, version);
    }

    saved(version) {
      this.version = version;
      // Text typed since that save was sent is still on its way: "Saving..." stays until it lands.
      if (!this.sending && !this.conflict && !this.pending) this.setStatus("saved", T.saved);
    }

    async dropQueued(filter) {
      if (this.pending && filter(this.pending)) this.pending = null;
      for (const entry of await db("all", "outbox")) {
        if (entry.key === this.key && filter(entry)) await db("del", "outbox", entry.saveId);
      }
    }

    showConflict(theirs) {
      this.conflict = theirs;
      const mine = this.values();
      const grid = document.createElement("div");
      grid.className = "draft-versions";
      Object.keys(mine).filter((name) => (theirs.fields[name] || "") !== mine[name]).forEach((name) => {
        [[T.conflictMine, mine[name], "mine"], [T.conflictTheirs, theirs.fields[name] || "", "theirs"]]
          .forEach(([label, text, side]) => {
            const box = document.createElement("label");
            box.textContent = `${label} (${name})`;
            const area = Object.assign(document.createElement("textarea"), { readOnly: true, value: text });
            area.dataset.draftVersion = side;
            box.append(area);
            grid.append(box);
          });
      });
      this.setStatus("conflict", "");
      this.showPanel(fill(T.conflict, { age: age(Date.parse(theirs.updated_at)) }), [
        [T.keepMine, () => this.resolve(theirs, false), "keep-mine"],
        [T.useTheirs, () => this.resolve(theirs, true), "use-theirs"],
      ], grid);
    }

    async resolve(theirs, useTheirs) {
      this.conflict = null;
      this.hidePanel();
      await this.dropQueued(() => true);
      await this.setVersion(theirs.version);
      if (useTheirs) this.fill(theirs.fields);
      await db("put", "drafts", this.key, { ...this.record(this.values()), version: theirs.version });
      if (useTheirs || this.same(theirs.fields)) { this.saved(theirs.version); return; }
      await this.queue(this.values());
      saveNow();
    }

    // --- After a reload, a crash, or on another device ------------------------------------------------------------------

    async start() {
      const [local, sent, queued, chain, live] = await Promise.all([
        db("get", "drafts", this.key), db("get", "sent", this.key),
        db("all", "outbox").then((all) => all.filter((e) => e.key === this.key)),
        db("get", "drafts", chainKey(tabId, this.key)), liveTabs(),
      ]);
      if (sent) return this.resumeSending(sent);
      let server;
      try {
        const response = await api(this.surface, "GET");
        server = response.status === 200 ? await response.json() : response.status === 404 ? null : undefined;
      } catch (err) {
        server = undefined; // unreachable: what this device kept is all we know
      }
      if (server === undefined) setOffline(true);
      // A reloaded tab goes on from its own queue; any other page starts from the server's version.
      await this.setVersion(chain ? chain.version : server ? server.version : 0);
      const unsynced = queued.length > 0;
      const candidates = [];
      if (local && (unsynced || server === undefined || (server && local.version >= server.version))) {
        candidates.push({ fields: local.fields, at: local.updatedAt, source: T.sourceDevice, local });
      }
      if (server && !(local && local.version === server.version && !unsynced)) {
        candidates.push({ fields: server.fields, at: Date.parse(server.updated_at), source: T.sourceServer, server });
      }
      const offer = candidates.filter((c) => Object.values(c.fields).some((v) => v.trim()) && !this.same(c.fields))
        .sort((a, b) => b.at - a.at)[0];
      if (offer && offer.local && local.tab === tabId) {
        // The same tab, reloaded: its text is put back as it was, and its queued saves go on.
        this.fill(offer.fields);
        this.setStatus(unsynced && offline ? "offline" : "restored", unsynced && offline ? T.savedOnDevice : T.restored);
        if (unsynced) saveNow();
      } else if (offer) {
        this.prompting = true;
        const excerpt = document.createElement("blockquote");
        excerpt.className = "draft-excerpt";
        const longest = Object.values(offer.fields).sort((x, y) => y.length - x.length)[0];
        excerpt.textContent = longest.length > 160 ? `${longest.slice(0, 159)}…` : longest;
        this.showPanel(fill(T.restorePrompt, { age: age(offer.at), source: offer.source }), [
          [T.restore, () => this.answerPrompt(offer, server, true), "restore"],
          [T.discard, () => this.answerPrompt(offer, server, false), "discard"],
        ], excerpt);
      } else {
        // Nothing to offer: what closed tabs left here is empty or what the page already shows.
        await this.dropQueued((e) => e.tab !== tabId && live !== null && !live.has(e.tab));
        if (server && this.same(server.fields)) this.setStatus("saved", T.saved);
      }
    }

    async answerPrompt(offer, server, restore) {
      this.prompting = false;
      this.hidePanel();
      await this.dropQueued((e) => e.tab !== tabId); // what other (closed) tabs left is the offer, or is refused
      await this.setVersion(server ? server.version : 0);
      if (restore) {
        this.fill(offer.fields);
        await db("put", "drafts", this.key, this.record(this.values()));
        if (server && this.same(server.fields)) { this.saved(server.version); return; }
        await this.queue(this.values());
        this.setStatus("saving", T.saving);
        saveNow();
        return;
      }
      await this.dropQueued(() => true);
      await db("del", "drafts", this.key);
      if (server) {
        try { await api(this.surface, "DELETE"); } catch (err) { /* offered again next time, never lost */ }
      }
      this.setStatus("idle", "");
    }

    // --- Sending the form ------------------------------------------------------------------------------------------------

    async submit(event) {
      event.preventDefault();
      if (this.sending) return;
      this.sending = true;
      this.lock(true);
      clearTimeout(saveTimer);
      await flushing; // a save under way lands before the form goes, so none arrives after it
      await this.dropQueued(() => true); // the form carries the newest text; no older save may follow it
      const body = new URLSearchParams(new FormData(this.form));
      if (event.submitter && event.submitter.name) body.append(event.submitter.name, event.submitter.value);
      const sent = { key: this.key, surface: this.surface, scope: this.scope, action: this.form.action,
                     body: Array.from(body.entries()), fields: this.values(), state: "sending", at: Date.now() };
      await db("put", "sent", this.key, sent);
      this.setStatus("saving", T.sending);
      await this.send(sent);
    }

    async send(sent) {
      let response;
      try {
        response = await request(sent.action, { method: "POST", body: new URLSearchParams(sent.body),
                                                headers: { "X-Backstop-Drafts": "1" } }, 20000);
      } catch (err) {
        return this.notSent(sent, T.whyUnreachable);
      }
      if (response.status >= 500) return this.notSent(sent, fill(T.whyServerError, { status: response.status }));
      // The server answered: it took the form, or it says what to fix. Either way this sending is over.
      const html = await response.text();
      await db("del", "sent", this.key);
      if (response.ok) await this.forgetIfTaken();
      // The answer is shown as it came (after a redirect too: loading it again could lose a one-time notice).
      showAnswer(html, response.url);
    }

    async forgetIfTaken() {
      let gone = true; // the server died right after taking the form: it took it
      try { gone = (await api(this.surface, "GET")).status === 404; } catch (err) { /* see above */ }
      if (!gone) return;
      await this.dropQueued(() => true);
      await db("del", "drafts", this.key);
      await db("del", "drafts", chainKey(tabId, this.key));
    }

    async notSent(sent, why) {
      sent.state = sent.state === "queued" ? "queued" : "failed";
      await db("put", "sent", this.key, sent);
      if (sent.state === "queued") return this.waitAndSend(sent);
      this.setStatus("error", "");
      this.showPanel(fill(T.notSent, { why }), [[T.sendWhenBack, () => this.sendWhenBack(sent), "send-when-back"]],
                     null, true);
    }

    async sendWhenBack(sent) {
      sent.state = "queued";
      await db("put", "sent", this.key, sent);
      this.waitAndSend(sent);
    }

    async waitAndSend(sent) {
      this.showPanel(T.waitingToSend, [], null, true);
      this.setStatus("offline", "");
      while (!(await serverIsUp())) await sleep(2000);
      this.setStatus("saving", T.sending);
      await this.send(sent);
    }

    resumeSending(sent) {
      this.fill(sent.fields);
      this.sending = true;
      this.lock(true);
      if (sent.state === "queued") return this.waitAndSend(sent);
      return this.notSent(sent, T.whyUnreachable);
    }
  }

  // The server version each tab's queue builds on, per draft: kept on the device, so a reloaded tab goes on.
  function chainKey(tab, key) { return `chain|${tab}|${key}`; }
  function setChain(tab, key, version) {
    return db("put", "drafts", chainKey(tab, key), { version, scope: key.split("|")[0], key: chainKey(tab, key),
                                                     draftKey: key });
  }

  function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  function showAnswer(html, url) {
    const page = new DOMParser().parseFromString(html, "text/html");
    document.title = page.title;
    document.body.replaceWith(document.adoptNode(page.body));
    if (url && url !== location.href) history.replaceState(null, "", url);
    // Scripts parsed that way do not run: the page's own run as they would have (this one only starts its editors).
    document.body.querySelectorAll("script:not([type]), script[type='text/javascript']").forEach((old) => {
      const fresh = document.createElement("script");
      Array.from(old.attributes).forEach((attribute) => fresh.setAttribute(attribute.name, attribute.value));
      fresh.textContent = old.textContent;
      old.replaceWith(fresh);
    });
    window.scrollTo(0, 0);
    scan();
  }

  // --- The queue: every tab's saves, sent in order --------------------------------------------------------------------------

  function scheduleSave(ms) {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveNow, ms);
  }

  function saveNow() {
    clearTimeout(saveTimer);
    flushing = (flushing || Promise.resolve()).then(() => withLock(sendQueued)).catch(() => undefined);
    return flushing;
  }

  function withLock(run) {
    return navigator.locks ? navigator.locks.request("backstop-drafts-queue", run) : run();
  }

  async function liveTabs() {
    if (!navigator.locks || !navigator.locks.query) return null;
    const { held } = await navigator.locks.query();
    const tabs = held.map((lock) => lock.name).filter((name) => name.startsWith(PREFIX + "tab:"));
    return new Set(tabs.map((name) => name.slice(PREFIX.length + 4)));
  }

  function setOffline(value) {
    offline = value;
    editors.forEach((editor) => {
      if (value && editor.status.dataset.state === "saving" && !editor.sending) {
        editor.setStatus("offline", T.savedOnDevice);
      }
    });
  }

  async function sendQueued() {
    const live = await liveTabs();
    const blocked = new Set();
    const queued = (await db("all", "outbox")).filter((e) => e.scope === config.scope).sort((a, b) => a.seq - b.seq);
    for (const entry of queued) {
      const editor = editors.get(entry.key);
      const orphan = entry.tab !== tabId && live !== null && !live.has(entry.tab);
      if (entry.tab !== tabId && !orphan) continue; // its own tab sends it
      if (orphan && editor) continue; // this page shows it in its restore prompt
      if (blocked.has(entry.key)) continue;
      if (!entry.attempted) {
        if (editor && editor.pending && editor.pending.saveId === entry.saveId) {
          entry.fields = editor.pending.fields; // the newest typing; from now on more typing is a new save
          editor.pending = null;
        }
        const chain = await db("get", "drafts", chainKey(entry.tab, entry.key));
        Object.assign(entry, { attempted: true, base: chain ? chain.version : 0 });
        await db("put", "outbox", entry.saveId, entry);
      }
      let response;
      try {
        response = await api(entry.surface, "PUT", { fields: entry.fields, base_version: entry.base,
                                                     save_id: entry.saveId, device: entry.tab, scope: entry.scope });
      } catch (err) {
        response = null;
      }
      if (!response || response.status >= 500 || response.status === 429) {
        setOffline(true);
        scheduleSave(retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
        return;
      }
      retryMs = 1000;
      const answer = await response.json().catch(() => ({}));
      await db("del", "outbox", entry.saveId);
      const mine = entry.tab === tabId && editor;
      if (response.status === 200) {
        await setChain(entry.tab, entry.key, answer.version);
        const local = await db("get", "drafts", entry.key);
        if (local && local.tab === entry.tab) await db("put", "drafts", entry.key, { ...local, version: answer.version });
        if (mine) mine.saved(answer.version);
      } else if (response.status === 409 && answer.draft) {
        // Both texts stay: the rest of this tab's queue for the draft is in the form (or on this device) already.
        for (const later of queued) {
          if (later.key === entry.key && later.tab === entry.tab) await db("del", "outbox", later.saveId);
        }
        blocked.add(entry.key);
        if (mine) { mine.pending = null; mine.showConflict(answer.draft); }
      } else {
        blocked.add(entry.key);
        const why = Object.values(answer.fields || {})[0] || answer.message || fill(T.whyRefused, { code: response.status });
        if (mine) mine.setStatus("error", fill(T.notSaved, { why }));
        if (response.status === 400) continue;
        await db("put", "outbox", entry.saveId, entry); // signed out, or the page's token is stale: kept for later
      }
    }
    setOffline(false);
    if (blocked.size === 0) retryMs = 1000;
  }

  // --- The page ---------------------------------------------------------------------------------------------------------------

  async function unsent() {
    const mine = (await db("all", "outbox")).some((e) => e.tab === tabId);
    return mine || Array.from(editors.values()).some((e) => e.conflict || e.sending);
  }

  let unsentNow = false;
  setInterval(async () => { unsentNow = await unsent(); }, 500);

  function warnBeforeClosing(event) {
    if (!unsentNow && !Array.from(editors.values()).some((e) => e.pending || e.conflict || e.sending)) return;
    event.preventDefault();
    event.returnValue = "";
  }

  // On a shared computer: what another person typed here and the server already has is not kept here.
  async function forgetOtherPeoplesCopies() {
    const queuedKeys = new Set((await db("all", "outbox")).map((e) => e.key));
    for (const record of await db("all", "drafts")) {
      if (record.scope && record.scope !== config.scope && !queuedKeys.has(record.draftKey || record.key)) {
        await db("del", "drafts", record.key);
      }
    }
  }

  function scan() {
    config = readConfig();
    forgetOtherPeoplesCopies().catch(() => undefined);
    window.addEventListener("beforeunload", warnBeforeClosing);
    editors.clear();
    const starting = Array.from(document.querySelectorAll("form[data-draft]")).map((form) => {
      const editor = new Editor(form);
      editors.set(editor.key, editor);
      return editor.start();
    });
    return Promise.all(starting).then(saveNow);
  }

  // Each tab holds a lock for its lifetime: the queue of a tab whose lock is gone (closed, crashed) is sent by another.
  if (navigator.locks) navigator.locks.request(PREFIX + "tab:" + tabId, () => new Promise(() => undefined));
  window.addEventListener("online", () => saveNow());
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") saveNow(); });

  // The service worker keeps a copy of this page (and this script) to show them again while the server is away.
  const kept = !("serviceWorker" in navigator) ? Promise.resolve(false)
    : navigator.serviceWorker.register(config.worker, { scope: "/" })
      .then(() => navigator.serviceWorker.ready)
      .then((registration) => new Promise((resolve) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = (event) => resolve(Boolean(event.data && event.data.kept));
        registration.active.postMessage({ type: "keep", url: location.href }, [channel.port2]);
      }))
      .catch(() => false);

  const ready = scan();
  window.backstopDrafts = { ready, kept, saveNow, isOffline: () => offline };
})();
