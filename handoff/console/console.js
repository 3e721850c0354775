/* Agent console, part 3 of 3: sign-in / sign-out, start, agent actions, live events and boot.
 * Needs console_base.js and console_ticket.js (loaded before it).
 *
 * Listens on /api/v1/agent/ws for live events, reconnecting with backoff and re-reading the list and
 * the open ticket after each (re)connection, because events sent while the socket was down are not
 * replayed.
 *
 * Safety rule for this file: text from customers (and from the bot, agents, the KB) is only ever put
 * into the page with textContent / createTextNode, never parsed as markup, so "<script>" stays text.
 * The page's Content-Security-Policy (console_routes.py) forbids inline scripts as a second guard.
 */
"use strict";

(() => {
  const { API, PING_EVERY_MS, RECONNECT_MAX_MS, $, state, el, clear, announce, showError, api, share } =
    window.AgentConsole.base;
  const { loadTickets, renderTickets, tick, upsertTicket, openTicket, summaryOf, renderHeader, appendMessage,
    renderContext, appendNote } = window.AgentConsole.ticket;

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

  share("app", { signedOut });
  Object.freeze(window.AgentConsole);

  document.addEventListener("DOMContentLoaded", boot);
})();
