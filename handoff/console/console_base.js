/* Agent console (served at /console by the gateway), part 1 of 3: constants, state, DOM helpers,
 * time and the API client. Plain JavaScript, no build step; index.html loads console_base.js,
 * console_ticket.js and console.js in that order with `defer`, and they share
 * window.AgentConsole, whose parts cannot be replaced once set (console.js freezes it at the end).
 *
 * Talks to the agent API (/api/v1/agent/...) with the HttpOnly session cookie set at sign-in (the
 * page never sees or stores the token).
 *
 * Safety rule for this file: text from customers (and from the bot, agents, the KB) is only ever put
 * into the page with textContent / createTextNode, never parsed as markup, so "<script>" stays text.
 * The page's Content-Security-Policy (console_routes.py) forbids inline scripts as a second guard.
 */
"use strict";

(() => {
  const API = "/api/v1/agent";
  const PING_EVERY_MS = 30000; // presence: the server counts an agent online if seen within 120 s
  const RECONNECT_MAX_MS = 15000;
  const REASONS = {
    explicit_request: "Asked for a person",
    repeated_failure: "Bot could not help",
    frustration: "Customer frustrated",
    business_rule: "Business rule",
  };
  const STATUS_LABELS = {
    queued: "waiting", assigned: "assigned", resolved: "resolved", handed_back: "handed back",
    abandoned: "abandoned", closed: "closed",
  };
  const OPEN = new Set(["queued", "assigned"]);

  const $ = (id) => document.getElementById(id);
  const state = {
    me: null,
    tickets: new Map(), // id → summary row
    unread: new Map(), // id → customer messages not yet seen
    current: null, // ticket detail of the open ticket
    currentId: null,
    seenMessages: new Set(),
    liveMessages: [], // messages of the open ticket that arrived by websocket while its detail loaded
    seenNotes: new Set(),
    skewMs: 0, // server clock − browser clock, from the Date header
    canned: [],
    queues: [],
    ws: null,
    wsWanted: false,
    reconnectMs: 1000,
    reconnectTimer: null,
    pingTimer: null,
    connectedOnce: false,
  };

  // ------------------------------------------------------------------ DOM helpers (text only)
  /** el("li", {class: "x"}, "text", childNode…): strings become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function facts(dl, pairs) {
    clear(dl);
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", {}, label), el("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value)));
    }
    if (!dl.childElementCount) dl.append(el("dt", {}, "—"), el("dd", { class: "muted" }, "nothing yet"));
  }

  function announce(text) {
    const box = $("announce");
    box.textContent = "";
    window.setTimeout(() => { box.textContent = text; }, 50);
  }

  function showError(id, err) {
    $(id).textContent = err ? (err.detail || err.message || String(err)) : "";
  }

  // ------------------------------------------------------------------ time
  function parseTime(iso) {
    if (!iso) return NaN;
    const hasZone = /(Z|[+-]\d\d:?\d\d)$/.test(iso);
    return Date.parse(hasZone ? iso : iso + "Z");
  }

  function serverNow() {
    return Date.now() + state.skewMs;
  }

  function clock(iso) {
    const t = parseTime(iso);
    return Number.isNaN(t) ? "" : new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    // X-Requested-With: the gateway refuses cookie-signed writes without it (or a same-origin Origin);
    // another site's page cannot add a custom header without a CORS preflight, which is never granted.
    const headers = { Accept: "application/json", "X-Requested-With": "supportbot-console" };
    const init = { method, credentials: "same-origin", headers };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(API + path, init);
    } catch (err) {
      throw new ApiError(0, "The gateway cannot be reached. Check your connection and try again.");
    }
    const date = Date.parse(resp.headers.get("Date") || "");
    if (!Number.isNaN(date)) state.skewMs = date - Date.now();
    let data = null;
    try {
      data = await resp.json();
    } catch (err) {
      data = null;
    }
    if (!resp.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
      if (resp.status === 401 && path !== "/login") {
        // Sign-out lives in console.js (loaded later), so it is looked up when needed.
        window.AgentConsole.app.signedOut("Your session has ended. Please sign in again.");
      }
      throw new ApiError(resp.status, detail || `${resp.status} ${resp.statusText}`);
    }
    return data;
  }

  // ------------------------------------------------------------------ shared namespace
  // Each file adds its part once; a part cannot be overwritten or deleted afterwards.
  const shared = {};
  Object.defineProperty(window, "AgentConsole", { value: shared, enumerable: true });

  function share(part, members) {
    Object.defineProperty(shared, part, { value: Object.freeze(members), enumerable: true });
  }

  share("base", {
    API, PING_EVERY_MS, RECONNECT_MAX_MS, REASONS, STATUS_LABELS, OPEN, $, state,
    el, clear, facts, announce, showError, parseTime, serverNow, clock, duration, api, share,
  });
})();
