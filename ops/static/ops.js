// Support ops page: a thin client of /api/v1/ops (see README "Support ops").
// Every piece of customer or server text is put in the page with textContent, never as HTML.
"use strict";

const API = "/api/v1/ops";
const $ = (sel, root = document) => root.querySelector(sel);
let token = sessionStorage.getItem("opsToken") || "";
let intents = [];
let jobTimer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

async function api(method, path, body) {
  // The custom header proves the request comes from this page (the gateway refuses cookie-signed
  // writes without it or a same-origin Origin: another site cannot add it without CORS).
  const headers = {"X-Requested-With": "supportbot-console"};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(API + path, {method, headers, credentials: "same-origin",
                                     body: body === undefined ? undefined : JSON.stringify(body)});
  if (!r.ok) {
    let detail = r.statusText;
    try { const j = await r.json(); detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (_) { /* keep */ }
    const err = new Error(`${r.status}: ${detail}`);
    err.status = r.status;
    throw err;
  }
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

function say(text, ok = true) {
  const s = $("#status");
  s.textContent = text;
  s.className = ok ? "ok" : "error";
}

async function guarded(fn) {
  try { await fn(); } catch (e) { say(e.message, false); }
}

// --- sign-in ------------------------------------------------------------------------------------
async function start() {
  try {
    await api("GET", "/models");
  } catch (e) {
    $("#signin").hidden = false;
    $("main").hidden = true;
    $("#tabs").hidden = true;
    if (token) $("#signin-error").textContent = e.status === 403 ? "This token does not grant admin access." : e.message;
    return;
  }
  $("#signin").hidden = true;
  $("main").hidden = false;
  $("#tabs").hidden = false;
  $("#who").textContent = token ? "signed in with the admin token" : "signed in as an admin agent";
  const known = await api("GET", "/intents");
  intents = known.intents;
  const list = $("#intent-list");
  list.replaceChildren(...intents.map((i) => el("option", {value: i})));
  show("inbox");
}

$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("opsToken", token);
  start();
});

for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));

function show(tab) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${tab}`;
  if (jobTimer) { clearInterval(jobTimer); jobTimer = null; }
  guarded({inbox: loadInbox, training: loadTraining, kb: loadKb, dashboard: loadDashboard}[tab]);
}

// --- inbox ------------------------------------------------------------------------------------------
function filterQuery() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) if (v) params.set(k, v);
  return params.toString();
}

$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(loadInbox); });
$("#export").addEventListener("click", (ev) => { ev.preventDefault(); guarded(() => download(`/inbox/export.csv?${filterQuery()}`, "review-inbox.csv")); });

async function download(path, name) {
  const text = await api("GET", path);
  const url = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
  const a = el("a", {href: url, download: name});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function loadInbox() {
  const data = await api("GET", `/inbox?${filterQuery()}`);
  $("#inbox-summary").textContent = `${data.items} item(s) in ${data.clusters.length} group(s), biggest first: ` +
    "per language and what the bot did, by meaning. Untick a message to leave it out of an action.";
  $("#clusters").replaceChildren(...data.clusters.map(clusterCard));
}

const KIND_LABELS = {
  fallback: "not understood (fallback)", low_confidence: "low confidence", kb_declined: "help centre declined",
  kb_unhelpful: "help answer marked unhelpful", rephrased: "customer rephrased",
};
const SHOWN = 5;  // messages shown per group before "more"

function kindLabel(kind) {
  if (kind.startsWith("handoff:")) return `handed to a person (${kind.slice(8).replace(/_/g, " ")})`;
  return KIND_LABELS[kind] || kind;
}

function clusterCard(c) {
  // Items come most typical first; every one is ticked, and an action applies to the ticked ones only.
  const boxes = c.items.map((i) => el("input", {type: "checkbox", checked: true, "data-item": i.id,
                                                 "aria-label": `include message ${i.id}`}));
  const ticked = () => boxes.filter((b) => b.checked).map((b) => Number(b.dataset.item));
  const intentInput = el("input", {list: "intent-list", placeholder: "intent", size: 18, "aria-label": "intent"});
  const isNew = el("input", {type: "checkbox"});
  const note = el("input", {placeholder: "note", size: 16, "aria-label": "note"});
  const act = (label, fn, attrs = {}) => el("button", {...attrs, onclick: () => guarded(async () => {
    const ids = ticked();
    if (!ids.length) throw new Error("tick at least one message");
    await fn(ids);
    await loadInbox();
  })}, label);
  const assign = async (ids, intent, newIntent) => {
    const r = await api("POST", "/inbox/assign", {item_ids: ids, intent, new_intent: newIntent});
    say(r.note || `${ids.length} example(s) of ${intent} written to ${r.items[0].resolution.file}`);
  };
  const row = (i, k) => el("li", {},
    boxes[k], el("span", {class: "text"}, i.masked), el("span", {class: "badge"}, i.source),
    i.intent ? el("span", {class: "badge"}, `${i.intent}${i.confidence === null ? "" : " " + i.confidence.toFixed(2)}`) : "",
    i.detail && i.detail.rephrase ? el("span", {class: "badge"}, `then: ${i.detail.rephrase}`) : "");
  const rows = c.items.map(row);
  const guesses = c.guesses.length
    ? el("div", {class: "guesses"}, "Bot's guesses (click one to assign the ticked messages to it): ", ...c.guesses.map((g) => act(
        `${g.intent} ${Math.round(g.score * 100)}%`, (ids) => assign(ids, g.intent, false),
        {class: "guess", title: `assign the ticked messages to ${g.intent} (best guess for ${g.best_for} of ${c.size})`,
         "data-intent": g.intent})))
    : el("div", {class: "guesses"}, c.unreadable ? "No readable words: nothing to learn, dismiss them." : "Bot's guesses: none");
  const kb = c.kb_article
    ? el("div", {class: "kb"}, "Closest help article: ",
        el("span", {class: "article", "data-article": c.kb_article.article_id},
           `${c.kb_article.title} (${c.kb_article.article_id}, ${c.kb_article.score.toFixed(2)})`))
    : "";
  const answered = Object.keys(c.kb_answered || {}).length
    ? el("div", {class: "kb"}, "Bot answered with: " + Object.entries(c.kb_answered).map(([k, v]) => `${k} ×${v}`).join(", "))
    : "";
  return el("div", {class: "cluster", "data-cluster": c.id, "data-language": c.language, "data-kind": c.kind},
    el("h3", {},
      el("span", {class: "badge lang"}, c.language), el("span", {class: "badge kind"}, kindLabel(c.kind)),
      el("span", {class: "size"}, `${c.size} ×`), el("q", {}, c.label)),
    guesses, kb, answered,
    el("ul", {}, ...rows.slice(0, SHOWN)),
    rows.length > SHOWN ? el("details", {}, el("summary", {}, `${rows.length - SHOWN} more`), el("ul", {}, ...rows.slice(SHOWN))) : "",
    el("div", {class: "actions"},
      el("label", {}, "Assign to intent", intentInput),
      el("label", {}, el("span", {}, "new intent"), isNew),
      act("Assign", (ids) => {
        const intent = intentInput.value.trim();
        if (!intent) throw new Error("choose an intent first");
        return assign(ids, intent, isNew.checked);
      }),
      note,
      act("Knowledge gap", async (ids) => { await api("POST", "/inbox/knowledge-gap", {item_ids: ids, note: note.value}); say("marked as a knowledge gap"); }),
      act("Dismiss", async (ids) => { await api("POST", "/inbox/dismiss", {item_ids: ids, note: note.value}); say("dismissed"); }),
    ),
  );
}

// --- training and models -------------------------------------------------------------------------
$("#train").addEventListener("click", () => guarded(async () => {
  const job = await api("POST", "/training/jobs", {auto_promote: $("#auto-promote").checked});
  say(`training job ${job.id} queued`);
  await loadTraining();
}));

async function loadTraining() {
  const [jobs, models] = await Promise.all([api("GET", "/training/jobs"), api("GET", "/models")]);
  $("#jobs tbody").replaceChildren(...jobs.map((j) => el("tr", {"data-job": j.id},
    el("td", {}, j.id), el("td", {}, j.status), el("td", {}, j.stage),
    el("td", {}, el("progress", {max: 1, value: j.progress}), ` ${Math.round(j.progress * 100)}%`),
    el("td", {}, j.started_by), el("td", {}, j.model_id || "-"),
    el("td", {}, (j.report && j.report.summary) || j.error || ""))));
  $("#models tbody").replaceChildren(...models.map((m) => el("tr", {"data-model": m.id},
    el("td", {}, m.id), el("td", {}, m.status),
    el("td", {}, Object.entries(m.accuracy || {}).map(([k, v]) => `${k} ${v === null ? "-" : (v * 100).toFixed(1)}%`).join(", ")),
    el("td", {}, m.stories ? (m.stories.failed || []).length : "-"), el("td", {}, m.trained_by), el("td", {}, m.created_at.slice(0, 19)),
    el("td", {}, m.status === "active" ? "live" : el("button", {onclick: () => guarded(async () => {
      const r = m.status === "refused" || m.promoted_at
        ? await api("POST", "/models/rollback", {model_id: m.id})
        : await api("POST", `/models/${encodeURIComponent(m.id)}/promote`, {force: false});
      say(`${r.action}: ${r.active} is live`);
      await loadTraining();
    })}, m.status === "refused" || m.promoted_at ? "Roll back to this" : "Promote")))));
  const running = jobs.some((j) => j.status === "queued" || j.status === "running");
  if (running && !jobTimer) jobTimer = setInterval(() => guarded(loadTraining), 2000);
  if (!running && jobTimer) { clearInterval(jobTimer); jobTimer = null; }
}

// --- knowledge base ------------------------------------------------------------------------------
async function loadKb() {
  await api("POST", "/drafts/propose");
  const [drafts, versions] = await Promise.all([api("GET", "/drafts"), api("GET", "/kb/versions")]);
  $("#drafts").replaceChildren(...(drafts.length ? drafts.map(draftCard) : [el("p", {}, "No drafts waiting.")]));
  $("#kb-versions tbody").replaceChildren(...versions.map((v) => el("tr", {"data-version": v.version},
    el("td", {}, v.version), el("td", {}, v.articles), el("td", {}, v.chunks), el("td", {}, v.updated_at || ""),
    el("td", {}, v.current ? "live" : el("button", {onclick: () => guarded(async () => {
      await api("POST", `/kb/versions/${encodeURIComponent(v.version)}/rollback`);
      say(`knowledge base rolled back to ${v.version}`);
      await loadKb();
    })}, "Roll back to this")))));
}

function draftCard(d) {
  const title = el("input", {value: d.title, "aria-label": "title"});
  const question = el("textarea", {"aria-label": "question"});
  question.value = d.question;
  const answer = el("textarea", {"aria-label": "answer"});
  answer.value = d.answer;
  const save = () => api("PATCH", `/drafts/${d.id}`, {title: title.value, question: question.value, answer: answer.value});
  return el("div", {class: "draft", "data-draft": d.id},
    el("strong", {}, `Draft #${d.id} (${d.language}, ticket ${d.ticket_id})`),
    el("label", {}, "Title", title), el("label", {}, "Question", question), el("label", {}, "Answer", answer),
    el("div", {class: "row"},
      el("button", {onclick: () => guarded(async () => { await save(); say("saved"); })}, "Save"),
      el("button", {onclick: () => guarded(async () => { await save(); const r = await api("POST", `/drafts/${d.id}/publish`); say(`published as ${r.article_id} (index ${r.kb_version})`); await loadKb(); })}, "Publish"),
      el("button", {onclick: () => guarded(async () => { await api("POST", `/drafts/${d.id}/discard`); await loadKb(); })}, "Discard")));
}

// --- dashboard -------------------------------------------------------------------------------------
const CHARTS = ["sessions", "containment_rate", "deflection_rate", "confirmed_resolution_rate", "handoff_rate",
                "kb_helpfulness_rate", "csat_mean", "first_agent_reply_s_median"];

$("#dash-form").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(loadDashboard); });
$("#analytics-csv").addEventListener("click", (ev) => { ev.preventDefault(); guarded(() => download(`/analytics.csv?${dashQuery(false)}`, "analytics.csv")); });

function dashQuery(withSeries = true) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#dash-form"))) if (v && (withSeries || k !== "series")) params.set(k, v);
  return params.toString();
}

async function loadDashboard() {
  const report = await api("GET", `/analytics?${dashQuery(false)}&group_by=language`);
  const t = report.total;
  const pct = (v) => (v === null ? "-" : `${(v * 100).toFixed(1)}%`);
  $("#totals").textContent = `${t.sessions} sessions · contained ${pct(t.containment_rate)} · deflection ${pct(t.deflection_rate)}` +
    ` · handoff ${pct(t.handoff_rate)} · KB helpful ${pct(t.kb_helpfulness_rate)} · CSAT ${t.csat_mean ?? "-"}`;
  const figures = [];
  for (const metric of CHARTS) {
    const svgText = await api("GET", `/analytics/chart.svg?metric=${metric}&${dashQuery()}`);
    const svg = new DOMParser().parseFromString(svgText, "image/svg+xml").documentElement;
    figures.push(el("figure", {"data-metric": metric}, document.importNode(svg, true)));
  }
  $("#charts").replaceChildren(...figures);
}

start();
