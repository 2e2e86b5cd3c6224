// memberstream dashboard: polls /dashboard/data every second; no libraries, no network
// beyond the worker that served it. Rates come from successive cumulative counts.
"use strict";
const POLL_MS = 1000, HISTORY = 120;
const series = { events: [], outputs: [], alerts: [] };
let last = null, shownFeed = null;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (x, d = 2) => (x === null || x === undefined) ? "n/a" : Number(x).toFixed(d);

function line(svg, data, colours) {
  const w = 600, h = 160, max = Math.max(1, ...Object.values(data).flat());
  let out = `<text x="4" y="12" font-size="11" fill="#5a6470">${max.toFixed(0)}/s</text>`;
  for (const [name, pts] of Object.entries(data)) {
    const step = w / (HISTORY - 1), off = HISTORY - pts.length;
    const d = pts.map((v, i) => `${((i + off) * step).toFixed(1)},${(h - 4 - (v / max) * (h - 20)).toFixed(1)}`).join(" ");
    out += `<polyline fill="none" stroke="${colours[name]}" stroke-width="2" points="${d}"/>`;
  }
  svg.innerHTML = out;
}

function bars(svg, counts) {
  const w = 300, h = 140, max = Math.max(1, ...counts), bw = w / counts.length;
  svg.innerHTML = counts.map((c, i) => {
    const bh = (c / max) * (h - 24);
    return `<rect x="${i * bw + 2}" y="${h - 14 - bh}" width="${bw - 4}" height="${bh}" fill="#4a78b5"><title>${(i / 10).toFixed(1)}-${((i + 1) / 10).toFixed(1)}: ${c}</title></rect>` +
      `<text x="${i * bw + bw / 2}" y="${h - 2}" font-size="10" text-anchor="middle">${(i / 10).toFixed(1)}</text>`;
  }).join("");
}

function table(el, counts) {
  el.innerHTML = Object.entries(counts).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${v}</td></tr>`).join("") || "<tr><td>none yet</td></tr>";
}

function alertItem(a) {
  const reasons = a.reasons.map((r) => esc(r.code)).join(", ");
  const byCode = {};
  for (const f of a.factors || []) byCode[f.code] = (byCode[f.code] || 0) + 1;
  const factors = Object.entries(byCode).map(([c, n]) => esc(c) + (n > 1 ? " ×" + n : "")).join(", ");
  const v = a.value || {};
  return `<li data-member="${esc(a.member_id)}"><span class="${esc(a.risk_level)}">${esc(a.risk_level)}</span> ` +
    `<a href="#" class="member-link">${esc(a.member_id)}</a> p=${fmt(a.churn_probability)} · ${reasons}` +
    (factors ? ` · factors ${factors}` : "") +
    ` · P(alive) ${fmt(v.p_alive)} · 90-day spend ${fmt(v.expected_spend_90d)} · <i>${esc(a.suggested_action)}</i> · ${esc(a.event_time)}</li>`;
}

function push(name, value) {
  series[name].push(value);
  if (series[name].length > HISTORY) series[name].shift();
}

async function poll() {
  try {
    const r = await fetch("/dashboard/data", { cache: "no-store" });
    const d = await r.json();
    const h = $("health");
    h.textContent = d.health.status + (d.health.reasons.length ? ": " + d.health.reasons.join("; ") : "");
    h.className = "pill " + d.health.status;
    $("summary").textContent = `${d.members} members · ${d.totals.events} events · ${d.totals.alerts} alerts · ${d.totals.dead_lettered} dead letters · model ${d.model_version}`;
    if (last) {
      const dt = Math.max(0.001, d.time - last.time);
      push("events", (d.totals.events - last.totals.events) / dt);
      push("outputs", (d.totals.outputs - last.totals.outputs) / dt);
      push("alerts", (d.totals.alerts - last.totals.alerts) / dt);
    }
    last = d;
    const colours = { events: "#4a78b5", outputs: "#2e8b57", alerts: "#b03a2e" };
    line($("rates"), series, colours);
    $("rates-legend").innerHTML = Object.entries(colours).map(([k, c]) => `<span><i style="background:${c}"></i>${k} ${fmt(series[k].at(-1) || 0, 1)}/s</span>`).join("");
    bars($("churn"), d.population.churn_histogram);
    $("churn-note").textContent = `${d.population.unscored} members not scored yet`;
    table($("stages"), d.population.stages);
    table($("tiers"), d.population.tiers);
    const feed = d.alerts.map(alertItem).join("") || "<li>no alert yet</li>";
    if (feed !== shownFeed) { $("alerts").innerHTML = feed; shownFeed = feed; }  // unchanged: left alone
  } catch (e) {
    const h = $("health");
    h.textContent = "worker unreachable";
    h.className = "pill down";
  }
}

async function showMember(id) {
  const el = $("member");
  $("member-id").value = id;
  const r = await fetch("/members/" + encodeURIComponent(id), { cache: "no-store" });
  const m = await r.json();
  if (!r.ok) { el.innerHTML = `<p class="error">${esc(m.error || r.status)}</p>`; return; }
  const v = m.value || {};
  const seq = m.sequence.slice(-20).reverse().map((i) => `<code>${esc(i)}</code>`).join(" ");
  const trend = (m.churn_at_checkpoints || []).map((c) => `<tr><td>${c.days} days silent</td><td class="n">${fmt(c.churn)}</td></tr>`).join("");
  const recs = m.recommendations.map((i) => `<tr><td><code>${esc(i.item_id)}</code></td><td class="n">${fmt(i.score, 3)}</td><td>${esc(i.reason || "")}</td></tr>`).join("");
  el.innerHTML = `<h3 id="member-title">${esc(m.member_id)}</h3>
    <p>stage <b>${esc(m.lifecycle_stage)}</b> · tier <b>${esc(m.tier || "none")}</b> · churn probability <b id="member-churn">${fmt(m.churn_probability)}</b>
    · ${m.events} events, last ${esc(m.last_event_time)}${m.open_alert ? " · alert open" : ""}</p>
    <div class="cols">
      <div><h2>Recent sequence, newest first</h2><p>${seq || "none"}</p></div>
      <div><h2>Churn trend</h2><table><tr><td>now</td><td class="n">${fmt(m.churn_probability)}</td></tr>${trend}</table>
        <p class="note">as the silence grows, with this sequence (the model's score at each inactivity checkpoint)</p></div>
      <div><h2>Recommendations${m.recommendations_fallback ? " (fallback)" : ""}</h2><table>${recs || "<tr><td>none yet</td></tr>"}</table></div>
      <div><h2>Value</h2><table>
        <tr><td>P(alive)</td><td class="n">${fmt(v.p_alive)}</td></tr>
        <tr><td>expected purchases, 90 days</td><td class="n">${fmt(v.expected_purchases_90d)}</td></tr>
        <tr><td>expected spend, 90 days</td><td class="n">${fmt(v.expected_spend_90d)}</td></tr>
        <tr><td>spend so far</td><td class="n">${fmt(m.monetary)}</td></tr></table></div>
    </div>`;
}

$("search").addEventListener("submit", (e) => { e.preventDefault(); const id = $("member-id").value.trim(); if (id) showMember(id); });
$("alerts").addEventListener("click", (e) => {
  const a = e.target.closest(".member-link");
  if (a) { e.preventDefault(); showMember(a.parentElement.dataset.member); }
});
const wanted = new URLSearchParams(location.search).get("member");
if (wanted) showMember(wanted);
poll();
setInterval(poll, POLL_MS);
