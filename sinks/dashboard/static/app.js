/* arrecon ops dashboard: polls the JSON API and redraws in place.
 *
 * Money arrives as integer minor units plus a currency; it is turned into text
 * with string arithmetic (no float), using the minor-unit digits the API sends.
 * Polling waits for each round to finish and backs off when the server is slow,
 * so a large ledger never stacks up queries.
 */
"use strict";

const BUCKETS = [
  ["current", "Current", "#4caf7d"],
  ["d1_30", "1–30", "#f2c94c"],
  ["d31_60", "31–60", "#f2994a"],
  ["d61_90", "61–90", "#e05d4f"],
  ["d90_plus", "90+", "#9b2c2c"],
];
const POLL_MS = 1500;
const FULL_REFRESH_MS = 15000;
const PAGE = 25;

const state = {
  asOf: localStorage.getItem("arrecon.asOf") || "now",
  currency: null,
  dimension: "channel",
  tab: "overview",
  exponents: {},
  bucket: null, // {key, currency, bucket, offset}
  exceptions: { kind: "", sort: "age", order: "desc", offset: 0 },
  customers: { q: "", offset: 0, selected: null },
  lastClock: null,
  lastFull: 0,
  charts: {},
};
window.arrecon = state; // for tests and for poking around in the console

// -- formatting ------------------------------------------------------------------

function digits(currency) {
  return currency in state.exponents ? state.exponents[currency] : 2;
}

function majorString(minor, exp) {
  const negative = String(minor).startsWith("-");
  const raw = String(minor).replace("-", "").padStart(exp + 1, "0");
  const whole = raw.slice(0, raw.length - exp);
  const frac = exp ? "." + raw.slice(raw.length - exp) : "";
  return (negative ? "-" : "") + whole + frac;
}

function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  const exp = digits(currency);
  try {
    return new Intl.NumberFormat("en-US", {
      style: "currency", currency, minimumFractionDigits: exp, maximumFractionDigits: exp,
    }).format(majorString(minor, exp));
  } catch (e) {
    return currency + " " + majorString(minor, exp);
  }
}

function chartMajor(minor, currency) {
  return Number(minor) / 10 ** digits(currency); // plotting only
}

function number(value, fractionDigits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: fractionDigits, minimumFractionDigits: fractionDigits });
}

function day(iso) {
  return iso ? String(iso).slice(0, 10) : "–";
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// -- API -------------------------------------------------------------------------------

async function api(path, params = {}) {
  const query = new URLSearchParams({ as_of: state.asOf, ...params });
  const answer = await fetch(`api/${path}?${query}`, { credentials: "same-origin", cache: "no-store" });
  if (answer.status === 401) {
    setStatus("error", "unauthorized: open the link with ?token=");
    throw new Error("unauthorized");
  }
  if (answer.status === 503) {
    setStatus("connecting", "waiting for data…");
    throw new Error("not ready");
  }
  if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
  return answer.json();
}

function setStatus(kind, text) {
  const node = document.getElementById("live-status");
  node.dataset.state = kind;
  node.querySelector(".text").textContent = text;
}

// -- KPIs ------------------------------------------------------------------------------

function setKpi(name, text, raw, hint) {
  const card = document.querySelector(`[data-kpi="${name}"]`);
  const value = card.querySelector(".value");
  const changed = value.textContent !== text && value.textContent !== "–";
  value.textContent = text;
  card.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  if (hint !== undefined) card.querySelector("[data-hint]").textContent = hint;
  if (changed) {
    card.classList.remove("flash");
    void card.offsetWidth;
    card.classList.add("flash");
  }
}

function renderSummary(summary) {
  state.exponents = { ...state.exponents, ...summary.exponents };
  const select = document.getElementById("currency");
  const currencies = summary.currencies.map((row) => row.currency);
  if (!state.currency || !currencies.includes(state.currency)) state.currency = currencies[0] || null;
  const options = currencies.map((c) => el("option", { value: c }, c));
  if (select.options.length !== options.length || [...select.options].some((o, i) => o.value !== currencies[i])) {
    select.replaceChildren(...options);
  }
  if (state.currency) select.value = state.currency;
  const row = summary.currencies.find((r) => r.currency === state.currency) || {};
  const cur = state.currency || "USD";
  setKpi("ar_minor", money(row.ar_minor ?? 0, cur), row.ar_minor ?? 0, `${money(row.past_due_minor ?? 0, cur)} past due`);
  setKpi("past_due_pct", row.past_due_pct == null ? "–" : number(row.past_due_pct) + " %", row.past_due_pct, "of open AR");
  setKpi("dso_days", number(row.dso_days), row.dso_days);
  setKpi("cei_pct", row.cei_pct == null ? "–" : number(row.cei_pct) + " %", row.cei_pct);
  setKpi("add_days", number(row.add_days), row.add_days);
  setKpi("unapplied_minor", money(row.unapplied_minor ?? 0, cur), row.unapplied_minor ?? 0, `${row.unapplied_count ?? 0} payments`);
  setKpi("deductions_minor", money(row.deductions_minor ?? 0, cur), row.deductions_minor ?? 0,
    `${row.deductions_count ?? 0} open${row.deductions_max_age_days ? `, oldest ${row.deductions_max_age_days} d` : ""}`);
  setKpi("disputed_minor", money(row.disputed_minor ?? 0, cur), row.disputed_minor ?? 0, `${row.disputes_count ?? 0} disputes`);
  const rate = summary.match_rate;
  const settled = rate.auto + rate.manual + rate.open;
  const pct = (n) => (settled ? Math.round((n / settled) * 100) : 0);
  setKpi("match_rate", settled ? `${pct(rate.auto)} %` : "–", `${rate.auto}/${rate.manual}/${rate.open}`,
    `auto ${rate.auto} · manual ${rate.manual} · open ${rate.open}`);
  const meter = document.querySelector('[data-kpi="match_rate"] .meter');
  meter.querySelector(".auto").style.width = `${pct(rate.auto)}%`;
  meter.querySelector(".manual").style.width = `${pct(rate.manual)}%`;
  meter.querySelector(".open").style.width = `${pct(rate.open)}%`;
  document.getElementById("as-of-label").textContent = `As of ${summary.as_of.slice(0, 19).replace("T", " ")} UTC`;
  document.body.dataset.asOf = summary.as_of;
}

// -- aging -----------------------------------------------------------------------------

function agingChart() {
  if (state.charts.aging) return state.charts.aging;
  const ctx = document.getElementById("aging-chart");
  state.charts.aging = new Chart(ctx, {
    type: "bar",
    data: { labels: [], datasets: BUCKETS.map(([, label, color]) => ({ label, data: [], backgroundColor: color, borderRadius: 3 })) },
    options: {
      maintainAspectRatio: false,
      animation: { duration: 250 },
      scales: { x: { stacked: true, grid: { display: false } }, y: { stacked: true, ticks: { callback: (v) => Number(v).toLocaleString("en-US") } } },
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${money(state.agingRows[item.dataIndex][BUCKETS[item.datasetIndex][0] + "_minor"], state.currency)}` } },
      },
      onClick: (event, elements) => {
        if (!elements.length) return;
        const { datasetIndex, index } = elements[0];
        const row = state.agingRows[index];
        openBucket(row.key, row.currency, BUCKETS[datasetIndex][0]);
      },
      onHover: (event, elements) => { event.native.target.style.cursor = elements.length ? "pointer" : "default"; },
    },
  });
  return state.charts.aging;
}

function renderAging(aging) {
  const rows = aging.rows;
  state.agingRows = rows;
  const chart = agingChart();
  chart.data.labels = rows.map((r) => r.key);
  BUCKETS.forEach(([name], i) => { chart.data.datasets[i].data = rows.map((r) => chartMajor(r[name + "_minor"], r.currency)); });
  chart.update();
  const tbody = document.querySelector("#aging-table tbody");
  fill(tbody, rows.map((row) => el("tr", { dataset: { key: row.key, currency: row.currency } },
    el("td", {}, row.key),
    ...BUCKETS.map(([name]) => el("td", {
      class: "num clickable", dataset: { bucket: name, minor: row[name + "_minor"] },
      onclick: () => openBucket(row.key, row.currency, name),
    }, money(row[name + "_minor"], row.currency))),
    el("td", { class: "num", dataset: { total: row.total_open_minor } }, money(row.total_open_minor, row.currency)),
    el("td", { class: "num", dataset: { count: row.open_invoices } }, row.open_invoices),
  )));
  if (!rows.length) fill(tbody, [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No open receivables in this currency."))]);
}

function openBucket(key, currency, bucket) {
  state.bucket = { key, currency, bucket, offset: 0 };
  loadBucket();
}

async function loadBucket() {
  const b = state.bucket;
  if (!b) return;
  const page = await api("aging/invoices", { dimension: state.dimension, key: b.key, currency: b.currency, bucket: b.bucket, limit: PAGE, offset: b.offset });
  const panel = document.getElementById("bucket-panel");
  panel.hidden = false;
  panel.dataset.key = b.key;
  panel.dataset.bucket = b.bucket;
  panel.dataset.total = page.total;
  const label = BUCKETS.find(([name]) => name === b.bucket)[1];
  document.getElementById("bucket-title").textContent = `${b.key} · ${label} days · ${b.currency}`;
  document.getElementById("bucket-total").textContent =
    `${page.total} invoices${page.total_open_minor != null ? ", " + money(page.total_open_minor, b.currency) + " open" : ""}`;
  fill(document.querySelector("#bucket-invoices tbody"), page.rows.map((inv) => el("tr", { dataset: { invoice: inv.invoice_number } },
    el("td", {}, inv.invoice_number), el("td", {}, inv.customer_id), el("td", {}, inv.status),
    el("td", { class: "num" }, day(inv.due_at)), el("td", { class: "num" }, inv.days_past_due),
    el("td", { class: "num" }, money(inv.amount_minor, inv.currency)),
    el("td", { class: "num", dataset: { minor: inv.open_minor } }, money(inv.open_minor, inv.currency)))));
  pager("bucket", page, (offset) => { b.offset = offset; loadBucket(); });
}

function pager(name, page, go) {
  const node = document.querySelector(`[data-pager="${name}"]`);
  const last = Math.min(page.offset + page.rows.length, page.total);
  node.replaceChildren(
    el("span", {}, page.total ? `${page.offset + 1}–${last} of ${page.total}` : "none"),
    el("button", { disabled: page.offset === 0 ? "" : null, onclick: () => go(Math.max(0, page.offset - page.limit)) }, "‹ Prev"),
    el("button", { disabled: last >= page.total ? "" : null, onclick: () => go(page.offset + page.limit) }, "Next ›"),
  );
}

// -- exceptions --------------------------------------------------------------------------

const KIND_LABELS = {
  unapplied: "Unapplied", short_paid: "Short-pay", deduction: "Deduction", invalid_deduction: "Invalid deduction",
  overpaid: "Overpaid", dead_letter: "Rejected input", credit_limit_exceeded: "Credit limit",
};

function why(row) {
  const parts = [el("div", {}, row.reason || "")];
  if (row.candidates && row.candidates.length) {
    parts.push(el("div", { class: "candidates" }, "Candidates: ", ...row.candidates.map((c, i) => [i ? ", " : "", el("b", {}, `${i + 1}. ${c}`)])));
  }
  if (row.evidence && row.evidence.length) parts.push(el("ul", { class: "evidence" }, row.evidence.map((e) => el("li", {}, e))));
  if (row.ref) parts.push(el("div", { class: "muted" }, row.ref));
  return parts;
}

async function loadExceptions() {
  const q = state.exceptions;
  const page = await api("exceptions", { kind: q.kind, currency: "", sort: q.sort, order: q.order, limit: PAGE, offset: q.offset });
  const total = Object.values(page.counts).reduce((a, b) => a + b, 0);
  document.getElementById("exceptions-badge").textContent = total ? String(total) : "";
  const chips = document.getElementById("exception-kinds");
  chips.replaceChildren(
    el("button", { "aria-pressed": String(q.kind === ""), onclick: () => { q.kind = ""; q.offset = 0; loadExceptions(); } }, `All ${total}`),
    ...Object.entries(page.counts).map(([kind, n]) => el("button", {
      "aria-pressed": String(q.kind === kind), dataset: { kind },
      onclick: () => { q.kind = kind; q.offset = 0; loadExceptions(); },
    }, `${KIND_LABELS[kind] || kind} ${n}`)),
  );
  document.querySelectorAll("#exceptions-table th.sortable").forEach((th) => {
    th.dataset.active = th.dataset.sort === q.sort ? q.order : "";
  });
  fill(document.querySelector("#exceptions-table tbody"), page.rows.map((row) => el("tr", { dataset: { exception: row.exception_id } },
    el("td", {}, el("span", { class: `kind ${row.kind}` }, KIND_LABELS[row.kind] || row.kind)),
    el("td", {}, row.payment_id || "–", row.invoice_number ? el("div", { class: "muted" }, row.invoice_number) : null),
    el("td", {}, row.customer_id || "–"),
    el("td", { class: "num", dataset: { minor: row.amount_minor } }, row.currency ? money(row.amount_minor, row.currency) : "–"),
    el("td", { class: "num" }, row.age_days >= 1 ? `${row.age_days} d` : `${row.age_hours} h`),
    el("td", {}, why(row)))));
  pager("exceptions", page, (offset) => { q.offset = offset; loadExceptions(); });
  const disputes = await api("disputes", { limit: PAGE });
  document.getElementById("disputes-total").textContent = `${disputes.total} open`;
  fill(document.querySelector("#disputes-table tbody"), disputes.rows.map((d) => el("tr", {},
    el("td", {}, d.dispute_key), el("td", {}, d.payment_id), el("td", {}, d.invoice_number || "–"), el("td", {}, d.customer_id || "–"),
    el("td", { class: "num" }, money(d.amount_minor, d.currency)), el("td", { class: "num" }, `${d.age_days} d`))));
}

// -- customers ---------------------------------------------------------------------------

async function loadCustomers() {
  const q = state.customers;
  const page = await api("customers", { q: q.q, limit: PAGE, offset: q.offset });
  fill(document.querySelector("#customers-table tbody"), page.rows.map((row) => el("tr", {
    class: "selectable" + (q.selected === row.customer_id ? " selected" : ""), dataset: { customer: row.customer_id },
    onclick: () => { q.selected = row.customer_id; loadCustomers(); loadCustomer(); },
  },
    el("td", {}, row.name || row.customer_id, el("div", { class: "muted" }, row.customer_id)),
    el("td", {}, row.segment),
    el("td", { class: "num" }, money(row.open_minor, row.currency)),
    el("td", { class: "num" }, row.limit_minor == null ? "–" : money(row.limit_minor, row.currency)),
    el("td", { class: "num" }, row.disputed_minor ? money(row.disputed_minor, row.currency) : "–"))));
  pager("customers", page, (offset) => { q.offset = offset; loadCustomers(); });
  if (q.selected) await loadCustomer();
}

async function loadCustomer() {
  const id = state.customers.selected;
  const data = await api(`customers/${encodeURIComponent(id)}`, { limit: PAGE });
  state.exponents = { ...state.exponents, ...data.exponents };
  const box = document.getElementById("customer-detail");
  const exposure = data.exposure[0];
  const name = exposure ? exposure.name || id : id;
  const children = [el("div", { class: "panel-head" }, el("h2", {}, name), el("span", { class: "muted" }, `${id} · ${exposure ? exposure.segment : ""}`))];
  for (const row of data.exposure) {
    children.push(el("h3", {}, `Credit exposure · ${row.currency}`));
    children.push(el("div", { class: "exposure-legend" },
      el("span", {}, "Limit ", el("b", {}, row.limit_minor == null ? "none" : money(row.limit_minor, row.currency))),
      el("span", {}, "Used ", el("b", {}, money(row.open_minor, row.currency))),
      el("span", {}, "Available ", el("b", {}, row.available_minor == null ? "–" : money(row.available_minor, row.currency)))));
    const canvas = el("canvas", { "aria-label": `Exposure ${row.currency}` });
    children.push(el("div", { class: "chart-box short" }, canvas));
  }
  const content = children;
  content.push(el("h3", {}, `Open invoices (${data.invoices.total}, ${data.overdue_invoices} overdue on this page)`));
  content.push(el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, el("th", {}, "Invoice"), el("th", {}, "Status"), el("th", { class: "num" }, "Due"), el("th", { class: "num" }, "Days past due"), el("th", { class: "num" }, "Open"))),
    el("tbody", {}, data.invoices.rows.map((inv) => el("tr", {}, el("td", {}, inv.invoice_number), el("td", {}, inv.status),
      el("td", { class: "num" }, day(inv.due_at)), el("td", { class: "num" }, inv.days_past_due), el("td", { class: "num" }, money(inv.open_minor, inv.currency)))))));
  content.push(el("h3", {}, "Applications"));
  content.push(el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Payment"), el("th", {}, "Invoice"), el("th", {}, "Method"), el("th", { class: "num" }, "Amount"))),
    el("tbody", {}, data.applications.map((a) => el("tr", {}, el("td", {}, day(a.at)), el("td", {}, a.payment_id), el("td", {}, a.invoice_number),
      el("td", {}, a.reversed ? `reversed (${a.reason})` : `${a.method} · ${number(a.confidence * 100, 0)} %`), el("td", { class: "num" }, money(a.amount_minor, a.currency)))))));
  content.push(el("h3", {}, `Reminders sent (${data.reminders.length}) · due: ${data.overdue_invoices} overdue invoices`));
  content.push(el("table", { class: "grid" },
    el("tbody", {}, data.reminders.length ? data.reminders.map((r) => el("tr", {}, el("td", {}, day(r.at)), el("td", {}, r.invoice_number), el("td", {}, r.step),
      el("td", { class: "num" }, money(r.open_minor, r.currency)))) : [el("tr", {}, el("td", { class: "muted" }, "None."))])));
  box.replaceChildren(...content);
  data.exposure.forEach((row, i) => {
    const used = chartMajor(row.open_minor, row.currency);
    const limit = row.limit_minor == null ? null : chartMajor(row.limit_minor, row.currency);
    const available = limit == null ? 0 : Math.max(0, limit - used);
    const over = limit != null && used > limit;
    const holder = box.querySelectorAll(".chart-box.short canvas")[i];
    new Chart(holder, {
      type: "bar",
      data: { labels: [row.currency], datasets: [
        { label: "Used", data: [used], backgroundColor: over ? "#d64545" : "#2f6fdf" },
        { label: "Available", data: [available], backgroundColor: "#cfe0ff" },
      ] },
      options: { indexAxis: "y", maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
        scales: { x: { stacked: true, max: limit == null ? undefined : Math.max(limit, used) }, y: { stacked: true, display: false } } },
    });
  });
}

// -- fees ------------------------------------------------------------------------------------

const SERIES_COLORS = ["#2f6fdf", "#2e9d6a", "#9b51e0", "#f2994a", "#56ccf2", "#eb5757"];

async function loadFees() {
  const fees = await api("fees", { days: 90 });
  const days = [...new Set(fees.series.flatMap((s) => s.points.map((p) => p.day)))].sort();
  const datasets = [];
  fees.series.forEach((series, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length];
    const byDay = Object.fromEntries(series.points.map((p) => [p.day, p]));
    const name = `${series.processor} ${series.currency}`;
    datasets.push({ label: `${name} observed`, data: days.map((d) => byDay[d]?.observed_bps ?? null), borderColor: color, backgroundColor: color, spanGaps: true, tension: 0.2, pointRadius: 2 });
    datasets.push({ label: `${name} rate card`, data: days.map((d) => byDay[d]?.expected_bps ?? null), borderColor: color, borderDash: [6, 4], pointRadius: 0, spanGaps: true });
  });
  const anomalyPoints = days.map((d) => {
    const hit = fees.anomalies.find((a) => day(a.at) === d);
    return hit ? JSON.parse(hit.details).observed_bps : null;
  });
  datasets.push({ label: "anomaly", data: anomalyPoints, type: "line", showLine: false, pointRadius: 6, pointStyle: "triangle", borderColor: "#d64545", backgroundColor: "#d64545" });
  const config = {
    type: "line", data: { labels: days, datasets },
    options: { maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } }, scales: { y: { title: { display: true, text: "bps" } } } },
  };
  if (state.charts.fees) { state.charts.fees.data = config.data; state.charts.fees.update(); }
  else state.charts.fees = new Chart(document.getElementById("fees-chart"), config);
  fill(document.querySelector("#anomalies-table tbody"), fees.anomalies.map((a) => {
    const details = JSON.parse(a.details);
    return el("tr", {}, el("td", {}, String(a.at).replace("T", " ").slice(0, 16)), el("td", {}, a.processor), el("td", {}, a.scope),
      el("td", { class: "num" }, `${details.expected_bps} bps`), el("td", { class: "num" }, `${details.observed_bps} bps`), el("td", {}, details.reason || ""));
  }));
}

// -- refresh loop ------------------------------------------------------------------------

async function refreshVisible() {
  const summary = await api("summary");
  renderSummary(summary);
  if (state.tab === "overview") {
    renderAging(await api("aging", { dimension: state.dimension, currency: state.currency || "", limit: 12 }));
    if (state.bucket) await loadBucket();
  } else if (state.tab === "exceptions") await loadExceptions();
  else if (state.tab === "customers") await loadCustomers();
  else if (state.tab === "fees") await loadFees();
}

async function tick() {
  const started = performance.now();
  try {
    const clock = await api("clock");
    const key = `${clock.deliveries}|${clock.stream_at}`;
    const stale = performance.now() - state.lastFull > FULL_REFRESH_MS;
    if (key !== state.lastClock || stale) {
      await refreshVisible();
      state.lastClock = key;
      state.lastFull = performance.now();
    }
    const status = document.getElementById("live-status");
    status.dataset.deliveries = clock.deliveries;
    setStatus("live", `live · ${Number(clock.deliveries).toLocaleString("en-US")} deliveries · ${new Date().toLocaleTimeString("en-GB")}`);
  } catch (error) {
    if (!["unauthorized", "not ready"].includes(error.message)) setStatus("error", "reconnecting…");
  }
  const spent = performance.now() - started;
  setTimeout(tick, Math.max(POLL_MS, 2 * spent));
}

function forceRefresh() {
  state.lastClock = null;
  refreshVisible().catch(() => {});
}

function wire() {
  const asOf = document.getElementById("as-of-mode");
  asOf.value = state.asOf;
  asOf.addEventListener("change", () => { state.asOf = asOf.value; localStorage.setItem("arrecon.asOf", state.asOf); forceRefresh(); });
  document.getElementById("currency").addEventListener("change", (e) => { state.currency = e.target.value; state.bucket = null; document.getElementById("bucket-panel").hidden = true; forceRefresh(); });
  document.querySelectorAll("#dimension button").forEach((button) => button.addEventListener("click", () => {
    state.dimension = button.dataset.dimension;
    state.bucket = null;
    document.getElementById("bucket-panel").hidden = true;
    document.querySelectorAll("#dimension button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    document.getElementById("aging-dimension-label").textContent = button.textContent;
    forceRefresh();
  }));
  document.querySelectorAll(".tabs button").forEach((button) => button.addEventListener("click", () => {
    state.tab = button.dataset.tab;
    document.querySelectorAll(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b === button)));
    document.querySelectorAll("main > .tab").forEach((section) => { section.hidden = section.id !== `tab-${state.tab}`; });
    forceRefresh();
  }));
  document.querySelectorAll("#exceptions-table th.sortable").forEach((th) => th.addEventListener("click", () => {
    const q = state.exceptions;
    q.order = q.sort === th.dataset.sort && q.order === "desc" ? "asc" : "desc";
    q.sort = th.dataset.sort;
    q.offset = 0;
    loadExceptions().catch(() => {});
  }));
  let timer = null;
  document.getElementById("customer-search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.customers.q = e.target.value; state.customers.offset = 0; loadCustomers().catch(() => {}); }, 250);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.color = "#6b7687";
  wire();
  tick();
});
