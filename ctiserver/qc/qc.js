/* The QC page: the month's tasks; a task's recording beside the sheet and the call record; score, comment at
   a second, acknowledge / appeal (agents), decide (supervisors). Same sign-in as the desktop (session cookie). */
"use strict";

const el = (id) => document.getElementById(id);
let me = null, sheet = null, current = null, comments = [];

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  const data = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((data && data.error && data.error.message) || r.status);
  return data;
}

function name(n) { return n ? (n.zh + " " + n.en) : ""; }

async function start() {
  try { me = await api("GET", "/api/me"); } catch (e) { el("login").hidden = false; return; }
  me = me.user || me;
  el("who").textContent = me.agent_no + " (" + me.role + ")";
  el("login").hidden = true; el("main").hidden = false;
  sheet = await api("GET", "/api/qc/sheet");
  await loadTasks();
}

async function loadTasks() {
  const month = el("month").value.trim();
  const rows = await api("GET", "/api/qc/tasks" + (month ? "?month=" + encodeURIComponent(month) : ""));
  const body = el("tasks").querySelector("tbody");
  body.textContent = "";
  for (const t of rows) {
    const tr = document.createElement("tr");
    tr.dataset.task = t.id; tr.className = "task-row";
    for (const v of [t.id, t.agent_id, t.reason, t.status, t.score === null ? "" : t.score]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    tr.addEventListener("click", () => openTask(t.id));
    body.appendChild(tr);
  }
}

function drawSheet() {
  const form = el("sheet-form");
  form.textContent = "";
  for (const s of sheet.sections) {
    const fs = document.createElement("fieldset");
    const lg = document.createElement("legend"); lg.textContent = name(s.name) + " (" + s.points + ")"; fs.appendChild(lg);
    for (const i of s.items) fs.appendChild(field("mark-" + i.id, name(i.name) + " /" + i.points, i.points, i.points));
    for (const d of s.deductions) fs.appendChild(field("ded-" + d.id, name(d.name) + " −" + d.points + " ×", 0, 100));
    form.appendChild(fs);
  }
  const fat = document.createElement("fieldset");
  const lg = document.createElement("legend"); lg.textContent = "致命错误 Fatal"; fat.appendChild(lg);
  for (const f of sheet.fatal) {
    const lab = document.createElement("label"); const cb = document.createElement("input");
    cb.type = "checkbox"; cb.id = "fatal-" + f.id; lab.appendChild(cb); lab.append(" " + name(f.name)); fat.appendChild(lab);
  }
  form.appendChild(fat);
}

function field(id, text, value, max) {
  const lab = document.createElement("label"); lab.textContent = text + " ";
  const inp = document.createElement("input"); inp.type = "number"; inp.id = id; inp.min = 0; inp.max = max;
  inp.step = "0.5"; inp.value = value; lab.appendChild(inp); return lab;
}

async function openTask(id) {
  current = await api("GET", "/api/qc/tasks/" + id);
  comments = [];
  el("task").hidden = false; el("task-id").textContent = current.id; el("result").textContent = "";
  el("comments").textContent = "";
  const rec = current.recording_id ? await api("GET", "/api/recordings/" + current.recording_id) : null;
  el("record").textContent = "call " + current.call_id + " · agent " + current.agent_id + " · queue " +
    (current.queue || "") + (rec ? " · " + rec.number + " · " + rec.duration_s + " s" : "");
  el("player").src = rec ? rec.audio : "";
  drawSheet();
  el("agent-actions").hidden = me.role !== "agent";
  el("decide-actions").hidden = !(me.role === "supervisor" || me.role === "admin") || current.status !== "appealed";
  el("submit-score").hidden = me.role === "agent";
}

el("player").addEventListener("timeupdate", () => { el("pos").textContent = el("player").currentTime.toFixed(1); });

el("comment-add").addEventListener("click", () => {
  const text = el("comment-text").value.trim();
  if (!text) return;
  const at = Math.round(el("player").currentTime * 10) / 10;
  comments.push({ at_s: at, text });
  const li = document.createElement("li"); li.textContent = at + " s: " + text; el("comments").appendChild(li);
  el("comment-text").value = "";
});

el("submit-score").addEventListener("click", async () => {
  const marks = {}, deductions = {}, fatal = [];
  for (const s of sheet.sections) {
    for (const i of s.items) marks[i.id] = Number(el("mark-" + i.id).value);
    for (const d of s.deductions) { const n = Number(el("ded-" + d.id).value); if (n) deductions[d.id] = n; }
  }
  for (const f of sheet.fatal) if (el("fatal-" + f.id).checked) fatal.push(f.id);
  try {
    current = await api("POST", "/api/qc/tasks/" + current.id + "/score", { marks, deductions, fatal, comments });
    el("result").textContent = "score " + current.score + (current.passed ? " ✓" : " ✗");
    el("result").dataset.score = current.score;
    await loadTasks();
  } catch (e) { el("result").textContent = String(e.message || e); }
});

el("ack").addEventListener("click", async () => {
  current = await api("POST", "/api/qc/tasks/" + current.id + "/acknowledge"); el("result").textContent = current.status;
});
el("appeal").addEventListener("click", async () => {
  current = await api("POST", "/api/qc/tasks/" + current.id + "/appeal", { text: el("appeal-text").value });
  el("result").textContent = current.status;
});
el("decide").addEventListener("click", async () => {
  const body = { decision: el("decision").value, note: el("decide-note").value };
  if (body.decision === "revised") body.score = Number(el("decide-score").value);
  current = await api("POST", "/api/qc/tasks/" + current.id + "/decide", body); el("result").textContent = current.status;
});
el("reload").addEventListener("click", loadTasks);

el("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("POST", "/api/auth/login", { agent_no: el("agent_no").value, password: el("password").value });
    await start();
  } catch (e) { el("login-error").textContent = String(e.message || e); }
});

start();
