/* Shared by /agent and /wallboard: JSON API calls, sign-in, and the resuming WebSocket. */
"use strict";

const $ = (id) => document.getElementById(id);

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
    return { ok: false, status: 0, error: "网络错误 network error" };
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
  return s >= 60 ? `${Math.floor(s / 60)}分${s % 60}秒 ${Math.floor(s / 60)}m${s % 60}s` : `${s}秒 ${s}s`;
}

/* Sign-in: shows the form until /api/me answers, then calls onReady(me). */
async function signIn(onReady) {
  const me = await api("GET", "/api/me");
  if (me.ok) { $("login-box").classList.add("hidden"); onReady(me.data); return; }
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
    $("login-box").classList.add("hidden");
    onReady(me2.data);
  });
}

function wireSignOut() {
  $("signout").classList.remove("hidden");
  $("signout").addEventListener("click", async () => {
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
