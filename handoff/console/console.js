/* Agent console (served at /console by the gateway). Plain JavaScript, no build step.
 *
 * Talks to the agent API (/api/v1/agent/...) with the HttpOnly session cookie set at sign-in (the
 * page never sees or stores the token) and listens on /api/v1/agent/ws for live events, reconnecting
 * with backoff and re-reading the list and the open ticket after each (re)connection, because events
 * sent while the socket was down are not replayed.
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
      if (resp.status === 401 && path !== "/login") signedOut("Your session has ended. Please sign in again.");
      throw new ApiError(resp.status, detail || `${resp.status} ${resp.statusText}`);
    }
    return data;
  }

  // ------------------------------------------------------------------ sign-in / sign-out
  function showSignIn(message) {
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("signin-username").focus();
  }

  function signedOut(message) {
    stopSocket();
    state.me = null;
    state.current = null;
    state.currentId = null;
    state.tickets.clear();
    showSignIn(message);
  }

  async function onSignIn(event) {
    event.preventDefault();
    const username = $("signin-username").value.trim();
    const password = $("signin-password").value;
    if (!username || !password) {
      $("signin-error").textContent = "Enter your username and password.";
      return;
    }
    const button = event.submitter || $("signin-form").querySelector("button");
    button.disabled = true;
    try {
      const result = await api("POST", "/login", { username, password });
      $("signin-password").value = "";
      await start(result.agent);
    } catch (err) {
      $("signin-error").textContent = err.status === 401 ? "Wrong username or password." : err.detail;
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    try {
      await api("POST", "/logout");
    } catch (err) {
      /* already signed out */
    }
    signedOut("You are signed out.");
  }

  async function onPasswordChange(event) {
    event.preventDefault();
    const current = $("password-current").value;
    const fresh = $("password-new").value;
    const message = $("account-message");
    if (!current || fresh.length < 10) {
      message.textContent = "Enter your current password and a new one of at least 10 characters.";
      return;
    }
    try {
      await api("POST", "/password", { current_password: current, new_password: fresh });
      $("password-current").value = "";
      $("password-new").value = "";
      message.textContent = "Password changed. Your other sessions were signed out.";
    } catch (err) {
      message.textContent = err.detail;
    }
  }

  async function signOutEverywhere() {
    try {
      await api("POST", "/sessions/revoke");
    } catch (err) {
      /* already signed out */
    }
    signedOut("You are signed out on every device.");
  }

  // ------------------------------------------------------------------ start
  async function boot() {
    $("signin-form").addEventListener("submit", onSignIn);
    $("signout").addEventListener("click", signOut);
    $("password-form").addEventListener("submit", onPasswordChange);
    $("signout-everywhere").addEventListener("click", signOutEverywhere);
    $("my-status").addEventListener("change", onStatus);
    $("filter-status").addEventListener("change", () => loadTickets());
    $("filter-queue").addEventListener("change", () => loadTickets());
    $("act-claim").addEventListener("click", () => ticketAction("claim"));
    $("act-resolve").addEventListener("click", () => ticketAction("resolve"));
    $("act-handback").addEventListener("click", () => ticketAction("handback"));
    $("transfer-form").addEventListener("submit", onTransfer);
    $("reply-form").addEventListener("submit", onReply);
    $("reply-text").addEventListener("keydown", onReplyKey);
    $("canned-insert").addEventListener("click", insertCanned);
    $("note-form").addEventListener("submit", onNote);
    window.addEventListener("online", () => { if (state.wsWanted && !state.ws) connect(); });
    window.setInterval(tick, 1000);
    try {
      const me = await api("GET", "/me");
      await start(me);
    } catch (err) {
      showSignIn(err.status === 401 ? "" : err.detail);
    }
  }

  async function start(me) {
    state.me = me;
    $("signin").hidden = true;
    $("app").hidden = false;
    $("whoami").textContent = `${me.display_name} (${me.role === "admin" ? "admin" : "agent"})`;
    $("my-status").value = me.status || "online";
    await Promise.all([loadQueues(), loadCanned(), loadAgents()]);
    await loadTickets();
    connect();
    const fromHash = Number((location.hash.match(/^#ticket-(\d+)$/) || [])[1]);
    if (fromHash) openTicket(fromHash, false);
  }

  async function onStatus() {
    try {
      state.me = await api("POST", "/status", { status: $("my-status").value });
      announce(`Status: ${state.me.status}`);
    } catch (err) {
      showError("action-error", err);
    }
  }

  async function loadQueues() {
    state.queues = await api("GET", "/queues");
    const filter = $("filter-queue");
    const transfer = $("transfer-queue");
    const chosen = filter.value;
    clear(filter).append(el("option", { value: "" }, "All queues"));
    clear(transfer).append(el("option", { value: "" }, "a queue…"));
    for (const q of state.queues) {
      filter.append(el("option", { value: q.name }, q.name));
      transfer.append(el("option", { value: q.name }, q.name));
    }
    filter.value = chosen;
    const body = clear($("queues-body"));
    for (const q of state.queues) {
      body.append(el("tr", {}, el("td", {}, q.name), el("td", {}, String(q.waiting)), el("td", {}, String(q.agents_online)),
        el("td", {}, q.open_now ? "yes" : "no")));
    }
  }

  async function loadCanned() {
    state.canned = await api("GET", "/canned");
  }

  async function loadAgents() {
    // Only admins may list agents; others type a colleague's username.
    if (!state.me || state.me.role !== "admin") return;
    const agents = await api("GET", "/admin/agents");
    const list = clear($("agent-names"));
    for (const a of agents) if (a.active) list.append(el("option", { value: a.username }, a.display_name));
  }

  // ------------------------------------------------------------------ ticket list
  function matchesFilter(t) {
    const status = $("filter-status").value;
    const queue = $("filter-queue").value;
    if (queue && t.queue !== queue) return false;
    if (status === "open") return OPEN.has(t.status);
    if (status === "mine") return t.status === "assigned" && state.me && t.agent_id === state.me.id;
    if (status === "all") return true;
    return t.status === status;
  }

  async function loadTickets() {
    const params = new URLSearchParams({ status: $("filter-status").value });
    if ($("filter-queue").value) params.set("queue", $("filter-queue").value);
    try {
      const rows = await api("GET", `/tickets?${params}`);
      state.tickets = new Map(rows.map((t) => [t.id, t]));
      renderTickets();
    } catch (err) {
      showError("action-error", err);
    }
  }

  function sortTickets(a, b) {
    return (a.priority - b.priority) || (parseTime(a.queued_at) - parseTime(b.queued_at)) || (a.id - b.id);
  }

  function ticketWhen(t) {
    if (t.status === "queued") return `waiting ${duration(serverNow() - parseTime(t.queued_at))}`;
    if (t.status === "assigned") return state.me && t.agent_id === state.me.id ? "yours" : `with ${t.agent || "an agent"}`;
    return STATUS_LABELS[t.status] || t.status;
  }

  function ticketItem(t) {
    const unread = state.unread.get(t.id) || 0;
    const reason = REASONS[t.reason] || t.reason;
    const button = el("button", {
      type: "button", class: "ticket", dataset: { id: String(t.id) },
      "aria-current": t.id === state.currentId ? "true" : "false",
    },
    el("span", { class: "row" },
      el("span", { class: `badge p${t.priority}` }, t.priority_label || `p${t.priority}`),
      el("span", { class: `badge status-${t.status}` }, STATUS_LABELS[t.status] || t.status),
      el("span", { class: "who" }, t.sender_id),
      unread ? el("span", { class: "unread", "aria-label": `${unread} new messages` }, String(unread)) : null),
    el("span", { class: "row" },
      el("span", { class: "why" }, t.rule ? `${reason}: ${t.rule.replaceAll("_", " ")}` : reason),
      el("span", { class: "wait", dataset: { wait: String(t.id) } }, ticketWhen(t))),
    el("span", { class: "row muted small" }, `#${t.id} · ${t.queue} · ${t.language} · ${t.channel}`));
    button.addEventListener("click", () => openTicket(t.id, true));
    return el("li", {}, button);
  }

  function renderTickets() {
    const list = $("tickets");
    const focusedId = document.activeElement && document.activeElement.classList.contains("ticket")
      ? document.activeElement.dataset.id : null;
    const rows = [...state.tickets.values()].filter(matchesFilter).sort(sortTickets);
    clear(list).append(...rows.map(ticketItem));
    $("tickets-empty").hidden = rows.length > 0;
    if (focusedId) {
      const again = list.querySelector(`.ticket[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
    const waiting = [...state.tickets.values()].filter((t) => t.status === "queued").length;
    document.title = waiting ? `(${waiting}) Support console` : "Support console";
  }

  function tick() {
    for (const span of document.querySelectorAll("[data-wait]")) {
      const t = state.tickets.get(Number(span.dataset.wait));
      if (t) span.textContent = ticketWhen(t);
    }
  }

  function upsertTicket(summary) {
    if (!summary || summary.id === undefined) return;
    const before = state.tickets.get(summary.id);
    state.tickets.set(summary.id, { ...(before || {}), ...summary });
    renderTickets();
    if (summary.id === state.currentId && state.current) {
      state.current = { ...state.current, ...summary };
      renderHeader();
    }
  }

  // ------------------------------------------------------------------ the open ticket
  async function openTicket(id, moveFocus) {
    state.currentId = id;
    state.liveMessages = [];
    state.unread.delete(id);
    history.replaceState(null, "", `#ticket-${id}`);
    renderTickets();
    showError("action-error", null);
    let detail;
    try {
      detail = await api("GET", `/tickets/${id}`);
    } catch (err) {
      if (state.currentId === id) {
        state.currentId = null;
        $("chat-body").hidden = true;
        $("context").hidden = true;
        $("chat-placeholder").hidden = false;
        $("chat-placeholder").textContent = err.detail;
      }
      return;
    }
    if (state.currentId !== id) return; // another ticket was chosen meanwhile
    state.current = detail;
    state.tickets.set(id, { ...(state.tickets.get(id) || {}), ...summaryOf(detail) });
    renderTickets();
    renderDetail();
    for (const m of state.liveMessages) appendMessage(m);
    state.liveMessages = [];
    if (moveFocus) $("chat-title").focus();
  }

  function summaryOf(detail) {
    const { transcript, context, customer, notes, csat, close_reason, ...summary } = detail;
    return summary;
  }

  function renderDetail() {
    $("chat-placeholder").hidden = true;
    $("chat-body").hidden = false;
    $("context").hidden = false;
    renderHeader();
    renderTranscript(state.current.transcript || []);
    renderContext();
    renderNotes(state.current.notes || []);
    renderCannedOptions();
  }

  function mine(t) {
    return t.status === "assigned" && state.me && (t.agent_id === state.me.id || state.me.role === "admin");
  }

  function renderHeader() {
    const t = state.current;
    $("chat-title").textContent = `#${t.id} · ${t.sender_id}`;
    $("chat-title").setAttribute("tabindex", "-1");
    const who = t.status === "assigned" ? ` · with ${t.agent_id === state.me.id ? "you" : t.agent}` : "";
    $("chat-meta").textContent =
      `${STATUS_LABELS[t.status] || t.status}${who} · queue ${t.queue} · ${t.language} · ${t.channel} · priority ${t.priority_label}`;
    const open = OPEN.has(t.status);
    $("act-claim").disabled = t.status !== "queued";
    $("act-resolve").disabled = !mine(t);
    $("act-handback").disabled = !mine(t);
    for (const node of $("transfer-form").elements) node.disabled = !open;
    const canReply = mine(t);
    $("reply-text").disabled = !canReply;
    $("reply-send").disabled = !canReply;
    $("canned").disabled = !canReply;
    $("canned-insert").disabled = !canReply;
    $("reply-hint").textContent = canReply ? "" : t.status === "queued" ? "Claim the ticket to reply."
      : open ? "Another agent has this chat." : "This ticket is closed.";
  }

  function renderTranscript(messages) {
    state.seenMessages = new Set();
    clear($("transcript"));
    for (const m of messages) appendMessage(m, false);
    scrollTranscript(true);
  }

  function appendMessage(m, scroll = true) {
    if (!m || state.seenMessages.has(m.id)) return;
    state.seenMessages.add(m.id);
    const box = $("transcript");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    // "handoff" messages are the gateway's own (queue position, agent joined, rating request).
    const who = m.from === "customer" ? "Customer" : m.from === "agent" ? (m.agent || "Agent")
      : m.type === "handoff" ? "System" : "Bot";
    const text = m.text || (m.payload ? `[button ${m.payload}]` : "");
    const item = el("li", { class: `msg from-${m.from} type-${m.type}`, dataset: { id: String(m.id) } },
      el("span", { class: "meta" }, `${who} · ${clock(m.created_at)}${m.language ? ` · ${m.language}` : ""}`),
      el("p", { class: "text" }, text));
    if (m.buttons && m.buttons.length) {
      item.append(el("span", { class: "buttons", "aria-label": "Buttons offered" },
        m.buttons.map((b) => el("span", {}, b.title))));
    }
    if (m.sources && m.sources.length) {
      item.append(el("ul", { class: "sources", "aria-label": "Sources" }, m.sources.map(sourceItem)));
    }
    box.append(item);
    if (scroll) scrollTranscript(nearBottom || m.from === "agent");
  }

  function sourceItem(s) {
    // Only http(s) links: a "javascript:" URL from a knowledge-base article must never become clickable.
    let url = null;
    try {
      const parsed = new URL(s.url, location.href);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") url = parsed.href;
    } catch (err) {
      url = null;
    }
    return el("li", {}, url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, s.title || url)
      : `${s.title || ""} (${s.url || ""})`);
  }

  function scrollTranscript(force) {
    const box = $("transcript");
    if (force) box.scrollTop = box.scrollHeight;
  }

  function pct(x) {
    return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
  }

  function renderContext() {
    const t = state.current;
    const c = t.context || {};
    $("ctx-summary").textContent = t.summary || "";
    const trigger = { ...(c.trigger || {}) };
    delete trigger.reason;
    delete trigger.rule;
    facts($("ctx-reason"), [
      ["Reason", REASONS[t.reason] || t.reason],
      ["Rule", t.rule ? t.rule.replaceAll("_", " ") : null],
      ...Object.entries(trigger).map(([k, v]) => [k.replaceAll("_", " "), v]),
      ["Topic", t.topic],
      ["Waiting since", clock(t.queued_at)],
    ]);
    const cu = t.customer || {};
    facts($("ctx-customer"), [
      ["Identity", cu.verified ? "verified" : "not verified"],
      ["Name", cu.full_name], ["Username", cu.username], ["Email", cu.email], ["Membership", cu.membership],
      ["Orders", Array.isArray(cu.orders) ? cu.orders.join(", ") : null],
      ["Claimed", cu.claimed_identifier], ["Contact email", cu.contact_email || t.contact_email],
    ]);
    const slots = c.slots || {};
    facts($("ctx-slots"), Object.entries(slots).map(([k, v]) => [k.replaceAll("_", " "), v]));
    const order = c.order;
    const orderDl = $("ctx-order");
    if (order) {
      facts(orderDl, [["Order", order.order_id], ["Status", order.status], ["Total", order.total],
        ["Carrier", order.carrier], ["Tracking", order.tracking_number],
        ["Refund", order.refund ? `${order.refund.amount} ${order.refund.status} (${order.refund.method})` : null]]);
      orderDl.hidden = false;
    } else {
      orderDl.hidden = true;
    }
    const turns = clear($("ctx-turns"));
    for (const turn of c.turns || []) turns.append(turnItem(turn));
    if (!turns.childElementCount) turns.append(el("li", { class: "muted" }, "No bot turns."));
    const kb = clear($("ctx-kb"));
    for (const k of c.kb_answers || []) kb.append(kbItem(k));
    if (!kb.childElementCount) kb.append(el("li", { class: "muted" }, "No help-centre answers shown."));
    const csat = t.csat || {};
    $("ctx-csat-section").hidden = !csat.score;
    $("ctx-csat").textContent = csat.score ? `${csat.score}/5${csat.comment ? ` — ${csat.comment}` : ""}` : "";
  }

  function turnItem(turn) {
    const low = turn.confidence !== null && turn.confidence !== undefined && turn.confidence < 0.5;
    const alts = (turn.ranking || []).filter((r) => r.name !== turn.intent).slice(0, 2);
    return el("li", {},
      el("div", { class: "said" }, turn.text ? `“${turn.text}”` : "(button)"),
      el("div", {}, el("span", { class: "intent" }, turn.intent || "?"), " ",
        el("span", { class: low ? "conf low" : "conf" }, pct(turn.confidence))),
      alts.length ? el("div", { class: "alt" }, `also: ${alts.map((r) => `${r.name} ${pct(r.confidence)}`).join(", ")}`) : null,
      (turn.entities || []).length ? el("div", { class: "ents" },
        `entities: ${turn.entities.map((e) => `${e.entity}=${e.value}`).join(", ")}`) : null,
      (turn.actions || []).length ? el("div", { class: "ents" }, `actions: ${turn.actions.join(", ")}`) : null);
  }

  function kbItem(k) {
    const feedback = k.helpful === true ? "marked helpful" : k.helpful === false ? "marked not helpful" : "no feedback";
    return el("li", {},
      el("div", { class: "said" }, `“${k.query || ""}”`),
      el("div", {}, `${k.outcome}${k.article_id ? ` · ${k.article_id}` : ""}${k.article_language ? ` (${k.article_language})` : ""}`),
      el("div", { class: "detail" }, `score ${k.score === null || k.score === undefined ? "–" : Number(k.score).toFixed(2)} · ${feedback}`));
  }

  function renderNotes(notes) {
    state.seenNotes = new Set();
    clear($("notes"));
    for (const n of notes) appendNote(n);
  }

  function appendNote(n) {
    if (!n || state.seenNotes.has(n.id)) return;
    state.seenNotes.add(n.id);
    $("notes").append(el("li", { dataset: { id: String(n.id) } },
      el("div", { class: "meta" }, `${n.agent || "agent"} · ${clock(n.created_at)}`),
      el("div", { class: "text" }, n.text)));
  }

  function renderCannedOptions() {
    const lang = state.current ? state.current.language : null;
    const select = clear($("canned"));
    select.append(el("option", { value: "" }, "Choose…"));
    for (const c of state.canned.filter((x) => !lang || x.language === lang)) {
      select.append(el("option", { value: c.id }, c.title));
    }
  }

  // ------------------------------------------------------------------ agent actions
  async function ticketAction(action) {
    const t = state.current;
    if (!t) return;
    showError("action-error", null);
    try {
      const summary = await api("POST", `/tickets/${t.id}/${action}`);
      upsertTicket(summary);
      announce({ claim: "Ticket claimed", resolve: "Ticket resolved", handback: "Handed back to the bot" }[action]);
      if (action === "claim") $("reply-text").focus();
      await refreshCurrent();
    } catch (err) {
      showError("action-error", err);
      await refreshCurrent();
    }
  }

  async function refreshCurrent() {
    if (state.currentId === null) return;
    const id = state.currentId;
    try {
      const detail = await api("GET", `/tickets/${id}`);
      if (state.currentId !== id) return;
      state.current = detail;
      state.tickets.set(id, { ...(state.tickets.get(id) || {}), ...summaryOf(detail) });
      renderTickets();
      renderHeader();
      for (const m of detail.transcript || []) appendMessage(m);
      renderContext();
      for (const n of detail.notes || []) appendNote(n);
    } catch (err) {
      showError("action-error", err);
    }
  }

  async function onReply(event) {
    event.preventDefault();
    const box = $("reply-text");
    const text = box.value.trim();
    if (!text || !state.current) return;
    $("reply-send").disabled = true;
    showError("action-error", null);
    try {
      const message = await api("POST", `/tickets/${state.current.id}/reply`, { text });
      box.value = "";
      appendMessage(message);
    } catch (err) {
      showError("action-error", err);
    } finally {
      renderHeader();
      box.focus();
    }
  }

  function onReplyKey(event) {
    // Enter sends; Shift+Enter is a new line; never send while an input method is composing (zh, ja…).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  }

  function insertCanned() {
    const id = $("canned").value;
    const lang = state.current ? state.current.language : null;
    const canned = state.canned.find((c) => c.id === id && c.language === lang) || state.canned.find((c) => c.id === id);
    if (!canned) return;
    const box = $("reply-text");
    box.value = box.value ? `${box.value.trimEnd()} ${canned.text}` : canned.text;
    box.focus();
  }

  async function onNote(event) {
    event.preventDefault();
    const box = $("note-text");
    const text = box.value.trim();
    if (!text || !state.current) return;
    try {
      appendNote(await api("POST", `/tickets/${state.current.id}/notes`, { text }));
      box.value = "";
    } catch (err) {
      showError("action-error", err);
    }
  }

  async function onTransfer(event) {
    event.preventDefault();
    if (!state.current) return;
    const queue = $("transfer-queue").value;
    const agent = $("transfer-agent").value.trim();
    if (Boolean(queue) === Boolean(agent)) {
      showError("action-error", new Error("Choose a queue or type an agent's username (one of them)."));
      return;
    }
    try {
      const summary = await api("POST", `/tickets/${state.current.id}/transfer`, queue ? { queue } : { agent });
      $("transfer-queue").value = "";
      $("transfer-agent").value = "";
      upsertTicket(summary);
      announce(`Transferred to ${queue || agent}`);
      await refreshCurrent();
    } catch (err) {
      showError("action-error", err);
    }
  }

  // ------------------------------------------------------------------ live events
  function setConnection(status, text) {
    const badge = $("connection");
    badge.dataset.state = status;
    badge.textContent = text;
  }

  function connect() {
    state.wsWanted = true;
    if (state.ws) return;
    window.clearTimeout(state.reconnectTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${API}/ws`);
    state.ws = ws;
    setConnection(state.connectedOnce ? "reconnecting" : "connecting", state.connectedOnce ? "Reconnecting…" : "Connecting…");
    ws.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      onEvent(data);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws === ws) state.ws = null;
      window.clearInterval(state.pingTimer);
      if (!state.wsWanted) return;
      if (event.code === 4401) {
        signedOut("Your session has ended. Please sign in again.");
        return;
      }
      const wait = state.reconnectMs + Math.floor(Math.random() * 300);
      state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MAX_MS);
      setConnection("reconnecting", `Offline — reconnecting in ${Math.ceil(wait / 1000)} s…`);
      state.reconnectTimer = window.setTimeout(connect, wait);
    });
  }

  function stopSocket() {
    state.wsWanted = false;
    window.clearTimeout(state.reconnectTimer);
    window.clearInterval(state.pingTimer);
    if (state.ws) state.ws.close(1000, "signed out");
    state.ws = null;
  }

  async function onHello() {
    state.reconnectMs = 1000;
    const again = state.connectedOnce;
    state.connectedOnce = true;
    setConnection("live", "Live");
    window.clearInterval(state.pingTimer);
    state.pingTimer = window.setInterval(() => {
      if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "ping" }));
    }, PING_EVERY_MS);
    // Events are not replayed: read what changed before the subscription started (the list was
    // loaded before the socket opened) or while the socket was down.
    if (again) announce("Reconnected");
    await Promise.all([loadTickets(), again ? refreshCurrent() : null, loadQueues().catch(() => {})]);
  }

  function onEvent(data) {
    switch (data.type) {
      case "hello":
        onHello();
        break;
      case "ticket.created":
        upsertTicket(data.ticket);
        announce(`New ticket from ${data.ticket.sender_id} in ${data.ticket.queue}`);
        loadQueues().catch(() => {});
        break;
      case "ticket.assigned":
      case "ticket.updated":
        upsertTicket(data.ticket);
        if (data.ticket && data.ticket.id === state.currentId) refreshCurrent();
        loadQueues().catch(() => {});
        break;
      case "ticket.agent_silent":
        upsertTicket(data.ticket);
        if (data.ticket && state.me && data.ticket.agent_id === state.me.id) {
          announce(`The customer on ticket ${data.ticket.id} is waiting for your reply`);
        }
        break;
      case "message":
        onMessageEvent(data);
        break;
      case "note":
        upsertTicket(data.ticket);
        if (data.ticket_id === state.currentId) appendNote(data.note);
        break;
      default:
        break; // pong and future event types
    }
  }

  function onMessageEvent(data) {
    if (data.ticket) upsertTicket(data.ticket);
    const id = data.ticket_id;
    if (id === state.currentId) {
      if (state.current && state.current.id === id) appendMessage(data.message);
      else state.liveMessages.push(data.message);
      return;
    }
    if (data.message && data.message.from === "customer") {
      state.unread.set(id, (state.unread.get(id) || 0) + 1);
      renderTickets();
      const t = state.tickets.get(id);
      if (t && state.me && t.agent_id === state.me.id) announce(`New message on ticket ${id}`);
    }
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
