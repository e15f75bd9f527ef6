/* Shared by /agent and /wallboard: the UI language, JSON API calls, sign-in, and the resuming WebSocket. */
"use strict";

const $ = (id) => document.getElementById(id);

/* The UI language: each person picks 中文 or English (kept in this browser; first visit: the browser's
   language). Page texts live in TEXTS as [zh, en]; elements name theirs with data-t (text), data-t-title,
   data-t-aria, data-t-placeholder. Names from the server come as {zh, en} and go through label(). */
const UI_LANGS = { zh: "中文", en: "English" };
const TEXTS = {
  network_error: ["网络错误", "network error"],
  offline: ["● 未连接", "● offline"], online: ["● 已连接", "● online"], reconnecting: ["● 重连中", "● reconnecting"],
  sign_in: ["登录", "Sign in"], sign_out: ["退出", "Sign out"], agent_no: ["工号", "Agent number"],
  password: ["密码", "Password"], ui_lang: ["界面语言", "Language"], none: ["无", "none"],
  min_s: ["{0}分{1}秒", "{0}m{1}s"], s: ["{0}秒", "{0}s"],
  handover_warning: ["交接班未完成，仍要退出吗", "Handover not finished, sign out anyway"],
};
let LANG = (() => {
  let saved = null;
  try { saved = localStorage.getItem("cti-lang"); } catch (e) { saved = null; }
  if (saved && saved in UI_LANGS) return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
})();
const langListeners = [];

/* TEXTS[key] in the UI language, {0} {1} ... filled from args. */
function t(key, ...args) {
  const entry = TEXTS[key];
  let text = entry ? entry[LANG === "zh" ? 0 : 1] : key;
  args.forEach((a, i) => { text = text.replace(`{${i}}`, a === null || a === undefined ? "" : String(a)); });
  return text;
}

/* A display name from the server ({zh, en}) in the UI language; a plain string as it is; an id without a
   name stays the id. */
function label(name, fallback) {
  if (name === null || name === undefined || name === "") return fallback === undefined ? "" : fallback;
  if (typeof name === "string") return name;
  return name[LANG] || name.zh || name.en || (fallback === undefined ? "" : fallback);
}

function applyTexts() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  if (document.body.dataset.title) document.title = t(document.body.dataset.title);
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-t-title]")) el.title = t(el.dataset.tTitle);
  for (const el of document.querySelectorAll("[data-t-aria]")) el.setAttribute("aria-label", t(el.dataset.tAria));
  for (const el of document.querySelectorAll("[data-t-placeholder]")) el.placeholder = t(el.dataset.tPlaceholder);
}

function setLang(lang) {
  if (!(lang in UI_LANGS)) return;
  LANG = lang;
  try { localStorage.setItem("cti-lang", lang); } catch (e) { /* private mode: this page only */ }
  applyTexts();
  for (const fn of langListeners) fn();
}

/* `fn` redraws what the page drew from data (pops, tables) when the language changes. */
function onLang(fn) { langListeners.push(fn); }

function initLang() {
  const sel = $("ui-lang");
  if (sel && !sel.options.length) {
    for (const [code, name] of Object.entries(UI_LANGS)) sel.append(new Option(name, code));
    sel.addEventListener("change", () => setLang(sel.value));
  }
  if (sel) sel.value = LANG;
  applyTexts();
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body || {});
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    return { ok: false, status: 0, error: t("network_error") };
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.statusText;
    return { ok: false, status: resp.status, error: msg, data };
  }
  return { ok: true, status: resp.status, data };
}

function setText(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
}

function fmtTime(ts) {
  if (!ts) return "—";
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.round(s);
  return s >= 60 ? t("min_s", Math.floor(s / 60), s % 60) : t("s", s);
}

/* The connection badge: data-up says it for tests and styles, the text in the UI language. */
function showConn(up) {
  const el = $("conn");
  el.className = up ? "conn" : "conn down";
  el.dataset.up = up ? "1" : "0";
  el.dataset.t = up ? "online" : "reconnecting";
  el.textContent = t(el.dataset.t);
}

/* Sign-in: shows the form until /api/me answers, then calls onReady(me). */
let SIGNED_IN = null;  // /api/me of the signed-in user (wireSignOut asks a leader about the handover)
async function signIn(onReady) {
  initLang();
  const me = await api("GET", "/api/me");
  if (me.ok) { SIGNED_IN = me.data; $("login-box").classList.add("hidden"); onReady(me.data); return; }
  $("login-box").classList.remove("hidden");
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-err").textContent = "";
    const r = await api("POST", "/api/auth/login",
                        { agent_no: $("agent_no").value.trim(), password: $("password").value });
    $("password").value = "";
    if (!r.ok) { $("login-err").textContent = r.error; return; }
    const me2 = await api("GET", "/api/me");
    if (!me2.ok) { $("login-err").textContent = me2.error; return; }
    SIGNED_IN = me2.data;
    $("login-box").classList.add("hidden");
    onReady(me2.data);
  });
}

function wireSignOut() {
  $("signout").classList.remove("hidden");
  $("signout").addEventListener("click", async () => {
    // the rulebook: an outgoing shift leader does not log out before the incoming one has logged in
    // and taken the handover (/handover); the server says whether that is so
    const role = SIGNED_IN && SIGNED_IN.user ? SIGNED_IN.user.role : "";
    if (role === "supervisor" || role === "admin") {
      const chk = await api("GET", "/api/wfm/handover/logout-check");
      if (chk.ok && chk.data.warning && !confirm(`${t("handover_warning")}: ${chk.data.warning}`)) return;
    }
    await api("POST", "/api/auth/logout", {});
    sessionStorage.removeItem("cti-push");
    location.reload();
  });
}

/* The push socket: sends its last seq per stream on every (re)connect, so nothing is missed. */
class Push {
  constructor(onMessage, onConn) {
    this.onMessage = onMessage;
    this.onConn = onConn;
    const saved = JSON.parse(sessionStorage.getItem("cti-push") || "{}");
    this.epoch = saved.epoch || null;
    this.last = saved.last || {};
    this.delay = 500;
    this.open();
  }
  save() { sessionStorage.setItem("cti-push", JSON.stringify({ epoch: this.epoch, last: this.last })); }
  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => { ws.send(JSON.stringify({ type: "hello", epoch: this.epoch, last: this.last })); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "hello") { this.delay = 500; this.onConn(true); return; }
      if (msg.type === "snapshot") {
        this.epoch = msg.epoch;
        for (const [stream, seq] of Object.entries(msg.seqs)) this.last[stream] = seq;
      } else if (msg.stream) {
        if (msg.seq <= (this.last[msg.stream] || 0) && this.epoch) return;  // already seen
        this.last[msg.stream] = msg.seq;
      }
      this.save();
      this.onMessage(msg);
    };
    ws.onclose = () => {
      this.onConn(false);
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }
}
