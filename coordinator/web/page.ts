/**
 * The cluster page: one HTML file with its own small script and styles, no framework (the
 * page needs tables, two line charts and an event stream; a framework would be most of its
 * bytes). State arrives over server-sent events from /api/events; the charts read
 * /api/series. It only reads: there is nothing on it that changes the cluster.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Herd cluster</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#243447;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}main{padding:12px 18px;display:grid;gap:14px}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 8px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;white-space:nowrap}
th{font-weight:600;color:#556}.bar{display:inline-block;height:8px;background:#3b7dd8;border-radius:2px;vertical-align:middle}
.off{color:#b33}.ok{color:#2a7}.muted{color:#889}.charts{display:grid;grid-template-columns:1fr 1fr;gap:14px}
svg{width:100%;height:200px}.legend span{margin-right:10px;font-size:12px}
#status{font-size:12px}#decisions td{white-space:normal;vertical-align:top}
</style></head><body>
<header><h1>Herd</h1><span id="summary">connecting...</span><span id="status" class="muted"></span></header>
<main>
<section><h2>Nodes</h2><table><thead><tr><th>node</th><th>state</th><th>arch</th><th>cores</th><th>CPU</th><th>memory</th><th>disk busy</th><th>containers</th></tr></thead><tbody id="nodes"></tbody></table></section>
<div class="charts">
<section><h2>Host CPU (%)</h2><svg id="hostChart" viewBox="0 0 600 200" preserveAspectRatio="none"></svg><div class="legend" id="hostLegend"></div></section>
<section><h2>Container ops</h2><svg id="opsChart" viewBox="0 0 600 200" preserveAspectRatio="none"></svg><div class="legend" id="opsLegend"></div></section>
</div>
<section><h2>Containers</h2><table><thead><tr><th>name</th><th>herd id</th><th>node</th><th>state</th><th>CPU (cores)</th><th>memory</th><th>ops</th><th>image</th></tr></thead><tbody id="containers"></tbody></table></section>
<section><h2>Migrations</h2><table><thead><tr><th>started</th><th>container</th><th>from</th><th>to</th><th>state</th><th>progress</th><th>downtime</th><th>reason</th></tr></thead><tbody id="migrations"></tbody></table></section>
<section id="decisionsSection" hidden><h2>Decisions</h2><table><thead><tr><th>at</th><th>mode</th><th>trigger</th><th>note</th><th>moves</th><th>refusals</th></tr></thead><tbody id="decisions"></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
const pct = (v) => v == null ? "-" : v.toFixed(0) + "%";
const bytes = (b) => b == null ? "-" : b >= 1e9 ? (b / 1e9).toFixed(1) + " GB" : (b / 1e6).toFixed(0) + " MB";
const time = (ms) => ms ? new Date(ms).toLocaleTimeString() : "-";
const COLORS = ["#3b7dd8", "#d8563b", "#2aa876", "#a05cd8", "#d8a23b", "#3bc3d8", "#d83b8a", "#6b7d3b"];
const bar = (v) => v == null ? "-" : '<span class="bar" style="width:' + Math.min(100, Math.max(0, v)).toFixed(0) + 'px"></span> ' + pct(v);
let lastMigrations = "";

function render(s) {
 const plural = (n, w) => n + " " + w + (n === 1 ? "" : "s");
  $("summary").textContent = plural(s.nodes.length, "node") + ", " + plural(s.containers.length, "container") + ", term " + s.term + ", coordinator " + (s.coordinator || "none");
  $("nodes").innerHTML = s.nodes.map((n) => "<tr data-node='" + esc(n.id) + "'><td>" + esc(n.id) + "</td><td class='" + (n.connected ? "ok" : "off") + "'>" + (n.connected ? "up" : "down") + (n.draining ? ", draining" : "") + (n.criu ? "" : ", no CRIU") + "</td><td>" + esc(n.arch) + "</td><td>" + n.cores + "</td><td>" + bar(n.cpu_pct) + "</td><td>" + bytes(n.mem_used_bytes) + " / " + bytes(n.memory_bytes) + "</td><td>" + pct(n.disk_busy_pct) + "</td><td>" + s.containers.filter((c) => c.node === n.id).length + "</td></tr>").join("");
  $("containers").innerHTML = s.containers.map((c) => "<tr data-herd-id='" + esc(c.herd_id) + "'><td>" + esc(c.name) + "</td><td>" + esc(c.herd_id) + "</td><td class='node'>" + esc(c.node) + "</td><td>" + esc(c.state) + "</td><td>" + (c.cpu_cores == null ? "-" : c.cpu_cores.toFixed(2)) + "</td><td>" + bytes(c.mem_bytes) + "</td><td>" + (c.ops == null ? "-" : c.ops.toFixed(1)) + "</td><td class='muted'>" + esc(c.image) + "</td></tr>").join("");
  $("migrations").innerHTML = s.migrations.map((m) => "<tr data-migration='" + esc(m.id) + "'><td>" + time(m.started_ms) + "</td><td>" + esc(m.herd_id) + "</td><td>" + esc(m.from) + "</td><td>" + esc(m.to) + "</td><td>" + esc(m.state) + (m.ended_ms ? "" : " (" + esc(m.step) + ")") + "</td><td>" + (m.bytes_total ? (100 * m.bytes_done / m.bytes_total).toFixed(0) + "%" : "-") + "</td><td>" + (m.downtime_ms ? m.downtime_ms + " ms" : "-") + "</td><td class='muted'>" + esc(m.reason) + "</td></tr>").join("") || "<tr><td colspan=8 class='muted'>none yet</td></tr>";
  if (Array.isArray(s.decisions)) {
    $("decisionsSection").hidden = false;
    $("decisions").innerHTML = s.decisions.map((d) => "<tr data-decision='" + esc(d.id) + "'><td>" + time(d.atMs) + "</td><td>" + esc(d.mode) + "</td><td>" + esc(d.trigger) + "</td><td>" + esc(d.note) + "</td><td>" + (d.actions || []).map((a) => esc(a.herdId + " " + a.from + "->" + a.to + ": " + a.reason + " [" + a.status + (a.detail ? ": " + a.detail : "") + "]")).join("<br>") + "</td><td class='muted'>" + (d.refusals || []).map((r) => esc(r.herdId + " " + r.filter + ": " + r.reason)).join("<br>") + (d.refusalsTotal > (d.refusals || []).length ? "<br>... " + (d.refusalsTotal - d.refusals.length) + " more" : "") + "</td></tr>").join("") || "<tr><td colspan=6 class='muted'>none yet</td></tr>";
  }
  const key = s.migrations.map((m) => m.id + m.state).join();
  if (key !== lastMigrations) { lastMigrations = key; charts(); }
}

function chart(svg, legend, data, yMax) {
  // The x axis spans what there is to show (a young cluster does not get 30 empty minutes).
  const first = Math.min(data.to_ms - 60000, ...data.lines.map((l) => l.points.length ? l.points[0][0] : Infinity), ...data.migrations.map((m) => m.at_ms));
  const from = Math.max(data.from_ms, first);
  const W = 600, H = 200, x = (t) => (t - from) / (data.to_ms - from) * W;
  const max = yMax || Math.max(1, ...data.lines.flatMap((l) => l.points.map((p) => p[1]))) * 1.1;
  const y = (v) => H - v / max * (H - 10);
  let out = data.migrations.map((m) => "<line x1='" + x(m.at_ms) + "' x2='" + x(m.at_ms) + "' y1='0' y2='" + H + "' stroke='#999' stroke-dasharray='4 3'><title>" + esc("migration of " + m.herd_id + " " + m.from + " -> " + m.to + " (" + m.state + ")") + "</title></line>").join("");
  out += data.lines.map((l, i) => "<polyline fill='none' stroke-width='1.5' stroke='" + COLORS[i % COLORS.length] + "' points='" + l.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") + "'/>").join("");
  svg.innerHTML = out;
  legend.innerHTML = data.lines.map((l, i) => "<span style='color:" + COLORS[i % COLORS.length] + "'>&#9632; " + esc(l.name) + "</span>").join("") + (data.migrations.length ? "<span class='muted'>dashed: migrations</span>" : "");
}

async function charts() {
  try {
    const [h, o] = await Promise.all(["host", "ops"].map((k) => fetch("/api/series?kind=" + k + "&minutes=30").then((r) => r.json())));
    chart($("hostChart"), $("hostLegend"), h, 100);
    chart($("opsChart"), $("opsLegend"), o);
  } catch (e) { $("status").textContent = "charts: " + e.message; }
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("state", (e) => { $("status").textContent = "live"; render(JSON.parse(e.data)); });
  es.onerror = () => { $("status").textContent = "reconnecting..."; };
}
connect();
charts();
setInterval(charts, 15000);
</script></body></html>
`;
