/* Agent console, part 2 of 3: the ticket list and the open ticket (header, transcript, the bot's
 * context, notes, canned replies). Needs console_base.js; console.js drives it.
 *
 * Safety rule for this file: text from customers (and from the bot, agents, the KB) is only ever put
 * into the page with textContent / createTextNode, never parsed as markup, so "<script>" stays text.
 * The page's Content-Security-Policy (console_routes.py) forbids inline scripts as a second guard.
 */
"use strict";

(() => {
  const { REASONS, STATUS_LABELS, OPEN, $, state, el, clear, facts, showError, parseTime, serverNow, clock,
    duration, api, share } = window.AgentConsole.base;

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

  share("ticket", {
    loadTickets, renderTickets, tick, upsertTicket, openTicket, summaryOf, renderHeader, appendMessage,
    renderContext, appendNote,
  });
})();
