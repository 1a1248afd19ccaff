"""The status page's HTML: inline CSS and JS only, filled from /status.json every 2 s."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>touchpoint-processor · status</title>
<style>
:root { --bg: #f4f6f9; --card: #fff; --ink: #1b2230; --muted: #5a6475; --bar: #2f6fd6;
        --track: #e6ebf2; --bad: #c0392b; --ok: #1e8e3e; --warn: #b26a00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display: flex; align-items: center; gap: 1rem; padding: .9rem 1.5rem;
         background: var(--ink); color: #fff; }
header h1 { font-size: 1.2rem; margin: 0; font-weight: 600; }
header .meta { margin-left: auto; color: #c9d1de; font-size: .9rem; }
.pill { padding: .15rem .6rem; border-radius: 999px; font-size: .85rem; font-weight: 600;
        background: var(--warn); }
.pill.ok { background: var(--ok); }
.pill.bad { background: var(--bad); }
main { padding: 1.25rem 1.5rem; display: grid; gap: 1.25rem; max-width: 1180px; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 1rem; }
.card { background: var(--card); border-radius: 8px; padding: 1rem 1.25rem;
        box-shadow: 0 1px 2px rgba(0, 0, 0, .08); }
.tile .l, h2 { color: var(--muted); font-size: .85rem; text-transform: uppercase;
               letter-spacing: .05em; margin: 0 0 .35rem; font-weight: 600; }
.tile .v { font-size: 2.3rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .s { color: var(--muted); font-size: .9rem; font-variant-numeric: tabular-nums; }
.tile.alert .v { color: var(--bad); }
.stage { display: grid; grid-template-columns: 9.5rem 1fr 5.5rem 4rem; align-items: center;
         gap: .75rem; margin: .4rem 0; }
.stage .name { font-weight: 600; }
.track { background: var(--track); border-radius: 4px; height: 1.7rem; overflow: hidden; }
.fill { background: var(--bar); height: 100%; min-width: 3px; }
.count { text-align: right; font-size: 1.25rem; font-weight: 650;
         font-variant-numeric: tabular-nums; }
.pct { text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 1.25rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid var(--track); }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.n { text-align: right; }
.empty { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>touchpoint-processor</h1>
  <span id="ready" class="pill">connecting</span>
  <span class="meta" id="meta">this worker</span>
</header>
<main>
  <div class="tiles">
    <div class="card tile">
      <div class="l">Events in / s</div><div class="v" id="events-rate">&ndash;</div>
      <div class="s" id="events-total"></div></div>
    <div class="card tile">
      <div class="l">Actions / s</div><div class="v" id="actions-rate">&ndash;</div>
      <div class="s" id="actions-total"></div></div>
    <div class="card tile" id="dl-tile">
      <div class="l">Dead letters</div><div class="v" id="deadletters-total">&ndash;</div>
      <div class="s" id="deadletters-rate"></div></div>
    <div class="card tile">
      <div class="l">Consumer lag</div><div class="v" id="lag-total">&ndash;</div>
      <div class="s">messages behind</div></div>
  </div>
  <section class="card">
    <h2>Stage funnel · people on this worker's partitions</h2>
    <div id="funnel"><div class="empty">waiting for data…</div></div>
  </section>
  <div class="cols">
    <section class="card"><h2>Dead letters by kind</h2>
      <table><thead><tr><th>kind</th><th>count</th></tr></thead><tbody id="dl-kinds"></tbody>
      </table></section>
    <section class="card"><h2>Consumer lag by topic</h2>
      <table><thead><tr><th>topic</th><th>partitions</th><th>lag</th></tr></thead>
      <tbody id="lag"></tbody></table></section>
  </div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const num = (x) => (x == null ? "\u2013" : Math.round(x).toLocaleString("en"));
const rate = (x) =>
  x == null ? "\u2013" : x < 10 ? x.toFixed(2) : Math.round(x).toLocaleString("en");
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function rows(body, items, cells) {
  body.replaceChildren();
  if (!items.length) {
    const tr = el("tr"); const td = el("td", "empty", "none"); td.colSpan = 3;
    tr.append(td); body.append(tr); return;
  }
  for (const item of items) {
    const tr = el("tr");
    for (const [text, cls] of cells(item)) tr.append(el("td", cls, text));
    body.append(tr);
  }
}
function render(s) {
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "rebalancing";
  ready.className = "pill " + (s.ready ? "ok" : "");
  $("meta").textContent = "v" + s.version + " · partitions " +
    (s.partitions.length ? s.partitions.join(", ") : "none") + " · " +
    new Date(s.at * 1000).toLocaleTimeString("en-GB");
  $("events-rate").textContent = rate(s.rates.consumed);
  $("events-total").textContent = num(s.totals.consumed) + " total";
  $("actions-rate").textContent = rate(s.rates.actions);
  $("actions-total").textContent = num(s.totals.actions) + " total · " +
    num(s.totals.suppressed) + " suppressed";
  $("deadletters-total").textContent = num(s.totals.deadletters);
  $("deadletters-rate").textContent = rate(s.rates.deadletters) + " / s";
  $("dl-tile").classList.toggle("alert", (s.rates.deadletters || 0) > 0);
  $("lag-total").textContent = num(s.lag_total);
  const people = s.funnel.reduce((a, f) => a + f.customers, 0);
  const widest = Math.max(1, ...s.funnel.map((f) => f.customers));
  const funnel = $("funnel");
  funnel.replaceChildren();
  for (const f of s.funnel) {
    const row = el("div", "stage");
    row.dataset.stage = f.stage;
    row.dataset.count = String(f.customers);
    const track = el("div", "track"); const fill = el("div", "fill");
    fill.style.width = (100 * f.customers / widest).toFixed(1) + "%";
    track.append(fill);
    const pct = people ? (100 * f.customers / people).toFixed(0) + "%" : "\u2013";
    row.append(el("div", "name", f.stage), track, el("div", "count", num(f.customers)),
               el("div", "pct", pct));
    funnel.append(row);
  }
  rows($("dl-kinds"), s.deadletters_by_kind, (d) => [[d.kind], [num(d.count), "n"]]);
  rows($("lag"), s.lag_by_topic,
       (l) => [[l.topic], [String(l.partitions), "n"], [num(l.lag), "n"]]);
}
async function refresh() {
  try {
    const r = await fetch("/status.json", { cache: "no-store" });
    render(await r.json());
  } catch (e) {
    $("ready").textContent = "unreachable";
    $("ready").className = "pill bad";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
