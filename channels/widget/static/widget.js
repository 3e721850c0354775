/* Support chat widget. One tag on any page:
 *   <script src="https://HOST/widget.js" data-title="Shop help" data-greeting="Hi!" data-color="#0f766e"
 *           data-position="right|left" data-lang="en|zh-Hans|zh-Hant|ru" data-user-id data-user-sig defer></script>
 * No framework, styles isolated in a shadow root. Talks to HOST over a websocket (/api/v1/ws), falls
 * back to REST (/api/v1/widget/chat) when the socket cannot be opened, reconnects with backoff, and
 * resends unanswered messages with the same client id (the gateway answers each id once).
 * Everything the bot or an agent writes is set with textContent: it is never parsed as HTML.
 * Wire format: channels/widget/protocol.py. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__supportWidget) return;
  window.__supportWidget = true;

  var ds = script.dataset;
  var base = new URL(script.src, location.href);
  var WS_URL = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/api/v1/ws";
  var REST = base.origin + "/api/v1/widget/";

  // --- interface language --------------------------------------------------------------------
  var STR = {
    en: {
      title: "Support", greeting: "Hi! How can I help you today?", open: "Open chat", close: "Close chat",
      input: "Type your message", send: "Send", human: "Talk to a person", log: "Conversation",
      typing: "Typing…", you: "You", bot: "Assistant", agent: "Agent", source: "Source",
      rate: "Rate {n} out of 5", connecting: "Connecting…", offline: "Offline, reconnecting…",
      fallback: "Limited connection", waiting: "Waiting to send", failed: "Not sent",
      signed: "Signed in as {u}", authError: "The chat could not start: {r}",
      state: { bot: "Assistant", queued: "Waiting for a person", human: "Talking to a person", closed: "Conversation closed" }
    },
    "zh-Hans": {
      title: "客服", greeting: "您好！有什么可以帮您？", open: "打开聊天", close: "关闭聊天",
      input: "输入消息", send: "发送", human: "转人工客服", log: "对话记录",
      typing: "正在输入…", you: "您", bot: "智能助手", agent: "客服", source: "来源",
      rate: "评分 {n}/5", connecting: "正在连接…", offline: "网络已断开，正在重连…",
      fallback: "连接受限", waiting: "等待发送", failed: "发送失败",
      signed: "已登录：{u}", authError: "聊天无法启动：{r}",
      state: { bot: "智能助手", queued: "正在等待人工客服", human: "人工客服为您服务", closed: "对话已结束" }
    },
    "zh-Hant": {
      title: "客服", greeting: "您好！有什麼可以幫您？", open: "開啟聊天", close: "關閉聊天",
      input: "輸入訊息", send: "傳送", human: "轉人工客服", log: "對話記錄",
      typing: "正在輸入…", you: "您", bot: "智慧助理", agent: "客服", source: "來源",
      rate: "評分 {n}/5", connecting: "正在連線…", offline: "網路已中斷，正在重新連線…",
      fallback: "連線受限", waiting: "等待傳送", failed: "傳送失敗",
      signed: "已登入：{u}", authError: "聊天無法啟動：{r}",
      state: { bot: "智慧助理", queued: "正在等待人工客服", human: "人工客服為您服務", closed: "對話已結束" }
    },
    ru: {
      title: "Поддержка", greeting: "Здравствуйте! Чем могу помочь?", open: "Открыть чат", close: "Закрыть чат",
      input: "Введите сообщение", send: "Отправить", human: "Связаться с оператором", log: "Переписка",
      typing: "Печатает…", you: "Вы", bot: "Ассистент", agent: "Оператор", source: "Источник",
      rate: "Оценка {n} из 5", connecting: "Подключение…", offline: "Нет связи, переподключаемся…",
      fallback: "Ограниченное соединение", waiting: "Ожидает отправки", failed: "Не отправлено",
      signed: "Вы вошли как {u}", authError: "Чат не запустился: {r}",
      state: { bot: "Ассистент", queued: "Ожидание оператора", human: "С вами оператор", closed: "Разговор завершён" }
    }
  };
  function uiLang() {
    var l = (ds.lang || document.documentElement.lang || navigator.language || "en").toLowerCase();
    if (l.indexOf("zh") === 0) return /hant|-tw|-hk|-mo/.test(l) ? "zh-Hant" : "zh-Hans";
    return l.indexOf("ru") === 0 ? "ru" : "en";
  }
  var LANG = uiLang();
  var T = STR[LANG];
  function fmt(s, k, v) { return s.replace("{" + k + "}", v); }

  // --- storage (localStorage may be unavailable: private modes, blocked cookies) -------------
  var mem = {};
  function load(k, d) {
    try { var v = localStorage.getItem(k); return v === null ? d : JSON.parse(v); }
    catch (e) { return k in mem ? mem[k] : d; }
  }
  function save(k, v) {
    try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { mem[k] = v; }
  }
  function randomId(bytes) {
    var a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return btoa(String.fromCharCode.apply(null, a)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  var token = load("sbw:token", null);
  if (!token) { token = randomId(16); save("sbw:token", token); }
  var userId = ds.userId || null, userSig = ds.userSig || null;
  var KEY = "sbw:" + (userId ? "u:" + userId : "anon");
  var outbox = load(KEY + ":outbox", []); // [{id, text, payload}] not yet answered
  function saveOutbox() { save(KEY + ":outbox", outbox); }
  function identity() { return userId ? { user_id: userId, user_sig: userSig, locale: LANG } : { token: token, locale: LANG }; }

  // --- DOM ------------------------------------------------------------------------------------
  var color = ds.color && window.CSS && CSS.supports("color", ds.color) ? ds.color : "#2563eb";
  var left = /left/.test(ds.position || "");
  var host = document.createElement("div");
  host.setAttribute("data-support-widget", "");
  var root = host.attachShadow({ mode: "open" });
  var side = left ? "left" : "right";
  var css =
    ":host{all:initial}*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,'PingFang SC','Microsoft YaHei',sans-serif}" +
    ".launch{position:fixed;bottom:20px;" + side + ":20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".launch svg{width:28px;height:28px;fill:currentColor}" +
    ".badge{position:absolute;top:-2px;right:-2px;min-width:18px;height:18px;border-radius:9px;background:#dc2626;color:#fff;font-size:11px;line-height:18px}" +
    ".panel{position:fixed;bottom:88px;" + side + ":20px;z-index:2147483001;width:min(380px,calc(100vw - 24px));height:min(600px,calc(100vh - 110px));display:flex;flex-direction:column;background:#fff;color:#111;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);overflow:hidden;font-size:14px;line-height:1.4}" +
    ".panel[hidden]{display:none}" +
    "header{background:var(--c);color:#fff;padding:10px 12px;display:flex;align-items:center;gap:8px}" +
    "header .t{flex:1;min-width:0}h2{margin:0;font-size:16px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}" +
    ".st{font-size:12px;opacity:.9}header button{background:rgba(255,255,255,.18);color:#fff;border:0;border-radius:8px;padding:6px 8px;cursor:pointer;font-size:12px}" +
    "header .x{font-size:18px;line-height:1;padding:4px 9px}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f8fafc}" +
    ".m{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".m.in{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:4px}" +
    ".m.out{align-self:flex-start;background:#fff;border:1px solid #e2e8f0;border-bottom-left-radius:4px}" +
    ".m.agent{border-color:var(--c)}.m.sys{align-self:center;background:#eef2ff;color:#3730a3;font-size:12px;text-align:center;border-radius:8px}" +
    ".who{display:block;font-size:11px;font-weight:600;color:var(--c);margin-bottom:2px}" +
    ".m.in .meta{display:block;font-size:10px;opacity:.8;text-align:right}" +
    ".src{display:block;margin-top:6px;font-size:12px}.src a{color:var(--c)}" +
    ".btns{display:flex;flex-wrap:wrap;gap:6px;align-self:flex-start;max-width:100%}" +
    ".btns button{border:1px solid var(--c);background:#fff;color:var(--c);border-radius:16px;padding:5px 11px;cursor:pointer;font-size:13px}" +
    ".btns button:disabled{opacity:.45;cursor:default}.btns.rate button{min-width:36px}" +
    ".typing{padding:0 12px 6px;font-size:12px;color:#64748b;background:#f8fafc;min-height:18px}" +
    ".err{padding:6px 12px;background:#fef2f2;color:#991b1b;font-size:12px}.err:empty{display:none}" +
    "form{display:flex;gap:6px;padding:8px;border-top:1px solid #e2e8f0}" +
    "textarea{flex:1;resize:none;border:1px solid #cbd5e1;border-radius:10px;padding:8px;font-size:14px;max-height:96px;color:#111;background:#fff}" +
    "form button{border:0;border-radius:10px;background:var(--c);color:#fff;padding:0 14px;cursor:pointer;font-size:14px}" +
    ":focus-visible{outline:2px solid #f59e0b;outline-offset:2px}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "@media (max-width:480px){.panel{inset:0;width:100vw;height:100%;border-radius:0}.launch{bottom:12px;" + side + ":12px}}";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  var style = el("style", {}, css);
  var launcher = el("button", { "class": "launch", type: "button", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "sbw-panel" });
  launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
  var badge = el("span", { "class": "badge", hidden: "" });
  launcher.appendChild(badge);
  var title = ds.title || T.title;
  var panel = el("div", { "class": "panel", id: "sbw-panel", role: "dialog", "aria-label": title, hidden: "" });
  panel.style.setProperty("--c", color);
  launcher.style.setProperty("--c", color);
  var header = el("header");
  var tbox = el("div", { "class": "t" });
  tbox.appendChild(el("h2", {}, title));
  var status = el("div", { "class": "st", role: "status" });
  tbox.appendChild(status);
  var humanBtn = el("button", { type: "button", "class": "human" }, T.human);
  var closeBtn = el("button", { type: "button", "class": "x", "aria-label": T.close }, "×");
  header.appendChild(tbox); header.appendChild(humanBtn); header.appendChild(closeBtn);
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" });
  var typing = el("div", { "class": "typing", "aria-live": "polite" });
  var errBox = el("div", { "class": "err", role: "alert" });
  var form = el("form");
  var input = el("textarea", { rows: "1", "aria-label": T.input, placeholder: T.input, maxlength: "4000" });
  var sendBtn = el("button", { type: "submit" }, T.send);
  form.appendChild(input); form.appendChild(sendBtn);
  [header, log, typing, errBox, form].forEach(function (n) { panel.appendChild(n); });
  [style, launcher, panel].forEach(function (n) { root.appendChild(n); });

  // --- rendering ------------------------------------------------------------------------------
  var convState = "bot", conn = "connecting", unread = 0, fatal = false;
  var answered = {}; // client ids whose replies are on screen
  var bubbles = {}; // client id -> the customer's bubble
  function safeUrl(u) {
    try { var p = new URL(u, location.href); return p.protocol === "http:" || p.protocol === "https:" ? p.href : null; }
    catch (e) { return null; }
  }
  function showStatus() {
    var s = T.state[convState] || T.state.bot;
    if (conn === "connecting") s += " · " + T.connecting;
    else if (conn === "offline") s += " · " + T.offline;
    else if (conn === "rest") s += " · " + T.fallback;
    if (userId) s += " · " + fmt(T.signed, "u", userId);
    status.textContent = s;
    humanBtn.hidden = convState === "queued" || convState === "human";
  }
  function setState(s) { if (s && T.state[s]) { convState = s; showStatus(); } }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function customerBubble(id, text, pending) {
    var b = el("div", { "class": "m in" });
    b.appendChild(el("span", { "class": "sr" }, T.you + ": "));
    b.appendChild(document.createTextNode(text));
    var meta = el("span", { "class": "meta" }, pending ? T.waiting : "");
    b.appendChild(meta);
    log.appendChild(b);
    if (id) bubbles[id] = meta;
    scroll();
  }
  function markBubble(id, text) { if (bubbles[id]) bubbles[id].textContent = text; }
  function disableButtons() {
    var all = log.querySelectorAll(".btns button");
    for (var i = 0; i < all.length; i++) all[i].disabled = true;
  }
  function botMessage(m) {
    var type = m.type || "text";
    var b = el("div", { "class": "m out" + (type === "agent" ? " agent" : type === "handoff" ? " sys" : "") });
    if (type !== "handoff") b.appendChild(el("span", { "class": type === "agent" ? "who" : "sr" }, (type === "agent" ? m.agent || T.agent : T.bot) + (type === "agent" ? "" : ": ")));
    b.appendChild(document.createTextNode(m.text || ""));
    (m.sources || []).forEach(function (s) {
      var url = safeUrl(s.url);
      var line = el("span", { "class": "src" }, T.source + ": ");
      if (url) line.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, s.title || url));
      else line.appendChild(document.createTextNode(s.title || ""));
      b.appendChild(line);
    });
    log.appendChild(b);
    var buttons = m.buttons || [];
    if (buttons.length) {
      var rating = buttons.length === 5 && buttons.every(function (x, i) { return String(x.title).trim() === String(i + 1); });
      var row = el("div", { "class": "btns" + (rating ? " rate" : ""), role: "group" });
      buttons.forEach(function (x) {
        var btn = el("button", { type: "button" }, x.title);
        if (rating) btn.setAttribute("aria-label", fmt(T.rate, "n", x.title));
        btn.addEventListener("click", function () { send(x.title, x.payload); });
        row.appendChild(btn);
      });
      log.appendChild(row);
    }
    if (panel.hidden) { unread++; badge.textContent = String(unread); badge.hidden = false; }
    scroll();
  }
  function showTyping() { typing.textContent = outbox.length && !fatal && (ready || conn === "rest") ? T.typing : ""; }
  function greet() { botMessage({ type: "text", text: ds.greeting || T.greeting }); unread = 0; badge.hidden = true; }

  function renderHistory(f) {
    log.textContent = "";
    answered = {}; bubbles = {};
    greet();
    var seen = {};
    (f.history || []).forEach(function (h) {
      if (h.direction === "in") {
        if (h.client_id) { seen[h.client_id] = true; if (h.status === "answered") answered[h.client_id] = true; }
        disableButtons();
        customerBubble(h.client_id, h.text, h.status === "pending");
      } else botMessage(h);
    });
    outbox = outbox.filter(function (o) { return !answered[o.id]; });
    saveOutbox();
    outbox.forEach(function (o) { if (!seen[o.id]) { disableButtons(); customerBubble(o.id, o.text || o.payload, true); } });
    if (panel.hidden) { unread = 0; badge.hidden = true; }
    setState(f.state);
    showTyping();
    scroll();
  }
  function onReply(f) {
    outbox = outbox.filter(function (o) { return o.id !== f.id; });
    saveOutbox();
    delete inflight[f.id];
    markBubble(f.id, "");
    if (!answered[f.id]) { answered[f.id] = true; (f.messages || []).forEach(botMessage); }
    setState(f.state);
    showTyping();
  }

  // --- transport ------------------------------------------------------------------------------
  var ws = null, ready = false, failures = 0, timer = null, inflight = {}, lastFrame = 0, poller = null, historyLen = -1;
  function connect() {
    if (fatal || (ws && ws.readyState < 2)) return;
    clearTimeout(timer);
    try { ws = new WebSocket(WS_URL); } catch (e) { return retry(); }
    var sock = ws;
    sock.onopen = function () { sock.send(JSON.stringify(Object.assign({ type: "hello" }, identity()))); };
    sock.onmessage = function (ev) { if (sock === ws) { lastFrame = Date.now(); onFrame(JSON.parse(ev.data)); } };
    sock.onclose = function (ev) {
      if (sock !== ws) return;
      ready = false; inflight = {};
      if (ev.code === 4400 || ev.code === 4401 || ev.code === 4403) return stop(ev.reason || String(ev.code));
      retry();
    };
  }
  function retry() {
    failures++;
    conn = navigator.onLine === false ? "offline" : failures >= 2 ? "rest" : "connecting";
    showStatus();
    if (conn === "rest") restMode();
    var delay = Math.min(30000, 500 * Math.pow(2, failures)) * (0.5 + Math.random() / 2);
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
  }
  function stop(reason) {
    fatal = true;
    errBox.textContent = fmt(T.authError, "r", reason);
    input.disabled = sendBtn.disabled = humanBtn.disabled = true;
    showTyping();
  }
  function onFrame(f) {
    if (f.type === "ready") {
      ready = true; failures = 0; conn = "ws"; stopPolling();
      renderHistory(f); flush();
    } else if (f.type === "ack") markBubble(f.id, "");
    else if (f.type === "reply") onReply(f);
    else if (f.type === "push") { (f.messages || []).forEach(botMessage); setState(f.state); }
    else if (f.type === "pending") { delete inflight[f.id]; markBubble(f.id, T.waiting); later(f.retry_after); }
    else if (f.type === "error") {
      if (f.id) delete inflight[f.id];
      if (f.id && !f.retry) {
        outbox = outbox.filter(function (o) { return o.id !== f.id; }); saveOutbox();
        markBubble(f.id, T.failed); showTyping();
      } else if (f.id) later(3);
      errBox.textContent = f.detail || "";
    }
    showStatus();
  }
  function later(seconds) { setTimeout(flush, Math.max(1, seconds || 5) * 1000); }
  function flush() {
    if (fatal) return;
    outbox.forEach(function (o) {
      if (inflight[o.id]) return;
      if (ready) {
        inflight[o.id] = true;
        ws.send(JSON.stringify({ type: "message", id: o.id, text: o.text, payload: o.payload || undefined }));
      } else if (conn === "rest") postMessage(o);
    });
    showTyping();
  }
  function post(path, body) {
    return fetch(REST + path, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(Object.assign(body, identity())) });
  }
  function postMessage(o) {
    inflight[o.id] = true;
    post("chat", { id: o.id, text: o.text, payload: o.payload || undefined }).then(function (r) {
      delete inflight[o.id];
      return r.json().then(function (body) {
        if (r.ok) onReply(body);
        else if (r.status === 503) { markBubble(o.id, T.waiting); later(body.retry_after); }
        else if (r.status === 401 || r.status === 403) stop(body.detail);
        else onFrame({ type: "error", id: o.id, detail: body.detail });
      });
    }, function () { delete inflight[o.id]; later(5); });
  }
  function restMode() {
    if (poller || fatal) return;
    var poll = function () {
      post("history", {}).then(function (r) { return r.ok ? r.json() : null; }).then(function (f) {
        if (!f || ready) return;
        var n = (f.history || []).length;
        if (n !== historyLen) { historyLen = n; renderHistory(f); }
        else setState(f.state);
        flush();
      }, function () {});
    };
    poll();
    poller = setInterval(poll, 5000);
  }
  function stopPolling() { clearInterval(poller); poller = null; historyLen = -1; }

  function send(text, payload) {
    if (fatal) return;
    text = (text || "").trim();
    if (!text && !payload) return;
    var o = { id: "w-" + randomId(12), text: text || payload, payload: payload || null };
    outbox.push(o); saveOutbox();
    save(KEY + ":started", true);
    disableButtons();
    customerBubble(o.id, o.text, !ready && conn !== "rest");
    errBox.textContent = "";
    flush();
    connect();
  }

  // Keep-alive: a socket silent for 60 s is dead even if the browser has not noticed (lost Wi-Fi).
  setInterval(function () {
    if (!ready) return;
    if (Date.now() - lastFrame > 60000) { ws.close(); return; }
    ws.send('{"type":"ping"}');
  }, 25000);
  window.addEventListener("online", function () { failures = 0; connect(); });
  window.addEventListener("offline", function () { conn = "offline"; showStatus(); });

  // --- interaction ----------------------------------------------------------------------------
  function openPanel(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? T.close : T.open);
    try { sessionStorage.setItem("sbw:open", open ? "1" : ""); } catch (e) { /* ignore */ }
    if (open) { unread = 0; badge.hidden = true; connect(); input.focus(); scroll(); }
    else launcher.focus();
  }
  launcher.addEventListener("click", function () { openPanel(panel.hidden); });
  closeBtn.addEventListener("click", function () { openPanel(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") openPanel(false); });
  humanBtn.addEventListener("click", function () { send(T.human, "/human_handoff"); });
  function submit() { send(input.value); input.value = ""; input.focus(); }
  form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });

  greet();
  showStatus();
  function mount() {
    document.body.appendChild(host);
    var wasOpen = false;
    try { wasOpen = !!sessionStorage.getItem("sbw:open"); } catch (e) { /* ignore */ }
    if (wasOpen) openPanel(true);
    else if (load(KEY + ":started", false) || outbox.length) connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
