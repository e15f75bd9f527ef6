"use strict";
/* The /reports page: charts drawn as SVG from /api/reports. Loaded after /static/common.js (api, $,
   signIn, wireSignOut: the same sign-in as the desktop and wallboard). */
const NS = "http://www.w3.org/2000/svg";
Object.assign(TEXTS, {
  title: ["服务指标报表", "KPI reports"], heading: ["服务指标", "Hotline KPIs"], from: ["从", "From"], to: ["到", "To"],
  show: ["查看", "Show"], sec_sl: ["服务水平（每半小时）", "Service level by half hour"],
  sec_asa: ["平均应答速度（秒，每半小时）", "ASA by half hour (s)"],
  sec_vol: ["呼入、人工受理、放弃", "Offered / answered / abandoned"],
  sec_agents: ["坐席状态（平均）", "Agents by state (average)"],
  sec_tiers: ["客户分级：服务水平与目标", "Tiers: service level vs target"],
  sec_totals: ["指标与目标", "Totals and targets"], sec_staffing: ["排班测算（Erlang C）", "Staffing (Erlang C)"],
  no_data: ["无数据", "no data"], sl_legend: ["服务水平（{0} 秒内接通）", "SL (answered within {0} s)"],
  target: ["目标", "target"], offered: ["呼入", "offered"], answered: ["人工受理", "answered"],
  abandoned: ["放弃", "abandoned"], on_call: ["通话", "on call"], wrap_up: ["话后", "wrap-up"],
  available: ["就绪", "available"], not_ready: ["未就绪", "not ready"], tier: ["客户等级", "tier"],
  sl: ["服务水平", "SL"], asa_s: ["平均应答（秒）", "ASA s"], abandon: ["放弃率", "abandon"],
  not_queued: ["未进入人工队列", "not queued"], metric: ["指标", "metric"], actual: ["实际", "actual"],
  met: ["达标", "met"], total: ["合计", "total"], value: ["数值", "value"], half_hour: ["半小时", "half hour"],
  arrivals: ["来电", "arrivals"], aht_s: ["平均处理（秒）", "AHT s"], erlangs: ["话务量（Erl）", "Erlangs"],
  needed: ["所需坐席", "needed"], logged_in: ["签入坐席", "logged in"], sl_with: ["按签入坐席的服务水平", "SL with them"],
  sec_qc: ["质检（坐席、每半小时）", "Quality inspection (by agent, by half hour)"],
  agent: ["坐席", "agent"], qc_inspected: ["质检通话", "calls inspected"], qc_avg_score: ["质检平均分", "average QC score"],
  qc_pass_rate: ["质检合格率", "QC pass rate"], qc_fatal: ["致命差错", "fatal errors"],
  yes: ["是", "yes"], no: ["否", "no"], loading: ["加载中…", "loading…"], error: ["出错：{0}", "error: {0}"],
});
let shown = null;  // the last report, drawn again when the language changes
let shownAgents = null;  // the same range by agent (the QC table)

function metricName(rep, key) {  // the site's name (kpi.yaml), else this page's own, else the key
  return label(((rep.names || {}).metrics || {})[key], key in TEXTS ? t(key) : key);
}
function tierName(rep, tier) {
  return tier === null ? t("not_queued") : label(((rep.names || {}).tiers || {})[tier], tier);
}
const COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b"];

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}
function text(parent, x, y, s, anchor) {
  const t = el("text", {x, y, "font-size": 10, "text-anchor": anchor || "start", fill: "#555"}, parent);
  t.textContent = s;  // data is never parsed as markup
  return t;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function legend(id, names, colors) {
  const box = $(id); clear(box);
  names.forEach((n, i) => {
    const s = document.createElement("span"); const sw = document.createElement("i");
    sw.style.background = (colors && colors[i]) || COLORS[i % COLORS.length]; s.appendChild(sw);
    s.appendChild(document.createTextNode(n)); box.appendChild(s);
  });
}

// Series chart: labels on x, one or more series (null = gap); stacked bars or lines.
function chart(svg, labels, series, opts) {
  clear(svg);
  const W = svg.clientWidth || 460, H = svg.clientHeight || 220, L = 40, R = 8, T = 8, B = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const n = labels.length;
  if (!n) { text(svg, W / 2, H / 2, t("no_data"), "middle"); return; }
  let max = opts.max || 0;
  if (!opts.max) {
    for (let i = 0; i < n; i++) {
      const vals = series.map((s) => s.values[i] || 0);
      max = Math.max(max, opts.stacked ? vals.reduce((a, b) => a + b, 0) : Math.max(...vals));
    }
    if (opts.target) max = Math.max(max, opts.target);
    max = max || 1;
  }
  const x = (i) => L + (W - L - R) * (i + 0.5) / n;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (let k = 0; k <= 4; k++) {
    const v = max * k / 4;
    el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
    text(svg, L - 4, y(v) + 3, opts.pct ? Math.round(v * 100) + "%" : (Math.round(v * 10) / 10).toString(), "end");
  }
  const step = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += step) text(svg, x(i), H - 6, labels[i], "middle");
  const bw = Math.max(1, (W - L - R) / n * 0.8);
  const color = (s, k) => s.color || COLORS[k % COLORS.length];
  if (opts.grouped) {
    const gw = bw / series.length;
    series.forEach((s, k) => s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      el("rect", {x: x(i) - bw / 2 + k * gw, y: y(v), width: Math.max(1, gw - 2), height: y(0) - y(v),
                  fill: color(s, k)}, svg);
    }));
  } else if (opts.stacked) {
    for (let i = 0; i < n; i++) {
      let acc = 0;
      series.forEach((s, k) => {
        const v = s.values[i] || 0; if (!v) return;
        el("rect", {x: x(i) - bw / 2, y: y(acc + v), width: bw, height: y(acc) - y(acc + v),
                    fill: color(s, k)}, svg);
        acc += v;
      });
    }
  } else {
    series.forEach((s, k) => {
      let d = "", pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1); pen = true;
      });
      el("path", {d, fill: "none", stroke: color(s, k), "stroke-width": 2}, svg);
      s.values.forEach((v, i) => { if (v !== null && v !== undefined)
        el("circle", {cx: x(i), cy: y(v), r: 2, fill: color(s, k)}, svg); });
    });
  }
  if (opts.target) {
    el("line", {x1: L, x2: W - R, y1: y(opts.target), y2: y(opts.target), stroke: "#b3261e",
                "stroke-dasharray": "4 3"}, svg);
  }
}

function table(id, header, rows) {
  const t = $(id); clear(t);
  const tr = t.insertRow();
  header.forEach((h) => { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); });
  rows.forEach((r) => {
    const row = t.insertRow();
    r.forEach((v) => {
      const c = row.insertCell();
      if (v && typeof v === "object" && "text" in v) { c.textContent = v.text; c.className = v.cls || ""; }
      else c.textContent = fmt(v);
    });
  });
}
function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? t("yes") : t("no");
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(v < 1 ? 3 : 1);
  return String(v);
}
const QC_HEADS = ["qc_inspected", "qc_avg_score", "qc_pass_rate", "qc_fatal"];
function qcCells(m) { return [m.qc_inspected, m.qc_avg_score, pct(m.qc_pass_rate), m.qc_fatal]; }

function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }

// Every half hour of the range, labelled as the server labels them (its time zone), so gaps show.
function halfHours(rep) {
  const f = new Intl.DateTimeFormat("sv-SE", {timeZone: rep.timezone, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false});
  const out = [];
  for (let t = Date.parse(rep.from); t < Date.parse(rep.to) && out.length < 5000; t += 1800000) {
    out.push(f.format(new Date(t)).replace(" ", "T"));
  }
  return out;
}

function render(rep) {
  shown = rep;
  const byLabel = new Map(rep.rows.map((r) => [r.key.halfhour, r.metrics]));
  const all = halfHours(rep);
  const days = new Set(all.map((l) => l.slice(0, 10))).size;
  const labels = all.map((l) => days > 1 ? l.slice(5, 16).replace("T", " ") : l.slice(11));
  const m = (k) => all.map((l) => byLabel.has(l) ? byLabel.get(l)[k] : null);
  const z = (k) => all.map((l) => byLabel.has(l) ? byLabel.get(l)[k] : 0);
  chart($("sl"), labels, [{values: m("service_level")}], {pct: true, max: 1, target: rep.settings.sl_target});
  legend("sl-legend", [t("sl_legend", rep.settings.sl_threshold_s), t("target")], [COLORS[0], "#b3261e"]);
  chart($("asa"), labels, [{values: m("asa_s")}], {});
  chart($("vol"), labels, [{values: z("calls_offered")}, {values: z("answered")}, {values: z("abandoned")}], {});
  legend("vol-legend", [t("offered"), t("answered"), t("abandoned")]);
  const per = (k) => all.map((l) => byLabel.has(l) && byLabel.get(l)[k] !== null ? byLabel.get(l)[k] / 1800 : 0);
  const stateColors = ["#1f77b4", "#2ca02c", "#c7d3e0", "#ff7f0e"];
  chart($("agents"), labels, ["on_call_s", "wrap_s", "available_s", "not_ready_s"].map((k, i) =>
    ({values: per(k), color: stateColors[i]})), {stacked: true});
  legend("agents-legend", [t("on_call"), t("wrap_up"), t("available"), t("not_ready")], stateColors);
  const tiers = rep.tiers.filter((r) => r.tier !== null);
  chart($("tiers"), tiers.map((r) => tierName(rep, r.tier)), [{values: tiers.map((r) => r.service_level)},
    {values: tiers.map((r) => r.target), color: "#c7d3e0"}], {pct: true, max: 1, grouped: true});
  // calls that never reached a queue have no tier and no service-level target
  table("tier-table", [t("tier"), t("offered"), t("sl"), t("target"), t("asa_s"), t("abandon")],
        rep.tiers.map((r) => [tierName(rep, r.tier), r.calls_offered,
          {text: pct(r.service_level), cls: r.met === false ? "bad" : "good"}, pct(r.target), r.asa_s,
          pct(r.abandon_rate)]));
  table("targets", [t("metric"), t("target"), t("actual"), t("met")], rep.targets.map((r) => [
    metricName(rep, r.metric), r.op + " " + fmt(r.target), r.actual,
    {text: r.met === null ? "–" : (r.met ? "✓" : "✗"), cls: r.met === false ? "bad" : "good"}]));
  const tot = rep.total;
  const keys = ["calls_offered", "ivr_contained", "agent_requests", "answered", "abandoned", "call_loss",
                "call_loss_rate", "agent_connection_rate", "ivr_connection_rate", "aht_s", "occupancy", "fcr_rate",
                "qc_inspected", "qc_avg_score", "qc_pass_rate", "qc_fatal"];
  table("totals", [t("total"), t("value")], keys.map((k) => [metricName(rep, k),
        k === "qc_pass_rate" ? pct(tot[k]) : tot[k]]));
  // quality inspection: the half hours with inspected calls (the score counts in the call's half hour)
  table("qc-halfhours", [t("half_hour"), ...QC_HEADS.map(t)],
        rep.rows.filter((r) => r.metrics.qc_inspected > 0).map((r) => [r.key.halfhour.replace("T", " "),
          ...qcCells(r.metrics)]));
  if (shownAgents) renderAgents(shownAgents);
  table("staffing", [t("half_hour"), t("arrivals"), t("aht_s"), t("erlangs"), t("needed"), t("logged_in"),
                     t("sl_with")],
        rep.staffing.filter((s) => s.arrivals > 0).map((s) => [s.halfhour.slice(11), s.arrivals, s.aht_s,
          s.load_erlangs, s.agents_needed, s.agents_logged_in, pct(s.sl_with_logged_in)]));
}

function renderAgents(rep) {
  shownAgents = rep;
  table("qc-agents", [t("agent"), ...QC_HEADS.map(t)],
        rep.rows.filter((r) => r.metrics.qc_inspected > 0).map((r) => [r.key.agent, ...qcCells(r.metrics)]));
}

let latest = 0;  // only the answer to the latest request is shown (a slow earlier one is dropped)
async function load() {
  const mine = ++latest;
  const from = $("from").value, to = $("to").value;
  const qs = new URLSearchParams({by: "halfhour"});
  if (from) qs.set("from", from);  // none given: the server's today in the hotline's time zone
  if (to) qs.set("to", to);
  const status = $("status"); status.className = ""; status.textContent = t("loading");
  const r = await api("GET", "/api/reports?" + qs.toString());
  if (mine !== latest) return;
  if (!r.ok) { status.className = "error"; status.textContent = t("error", r.error); return; }
  const body = r.data;
  if (!$("from").value) $("from").value = body.from.slice(0, 10);
  if (!$("to").value) $("to").value = body.to.slice(0, 10);
  const shown = new URLSearchParams({by: "halfhour", from: $("from").value, to: $("to").value});
  $("csv").href = "/api/reports?" + shown.toString() + "&format=csv";
  render(body);
  const agents = await api("GET", "/api/reports?" + new URLSearchParams({by: "agent", from: $("from").value,
    to: $("to").value}).toString());
  if (mine !== latest) return;
  if (agents.ok) renderAgents(agents.data);
  status.textContent = `${body.from.slice(0, 16)} – ${body.to.slice(0, 16)} (${body.timezone})`;
}
(function init() {
  $("load").addEventListener("click", load);
  signIn((me) => {  // the first report is the hotline's today, as the server's clock and time zone say
    $("who").textContent = `${me.user.name} (${me.user.agent_no})`;
    wireSignOut();
    $("report").classList.remove("hidden");
    onLang(() => { if (shown) render(shown); });
    load();
  });
})();
