// The analytics dashboard: log in, and see your organization's last 30 days at once;
// pick another report (an organization, one of its events, or the platform for its
// administrators) and period, and see its totals against the period before, a time
// series, bars, the top events and the funnel. In the reader's language (the words come
// in the page, chosen by the server; the signed-in person's preference wins). Plain
// browser JavaScript, no build step; charts by uPlot (vendored next to this file).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = "veche.access_token";
const DAY_MS = 86400000;
const T = JSON.parse($("text").textContent);

// `template` with each {name} replaced by `values[name]`.
const fill = (template, values) => template.replace(/\{(\w+)\}/g, (whole, name) => values[name] ?? whole);
// A metric's name for people: "check_ins" reads "Check-ins" (or "Пришли").
const label = (metric) => T.metrics[metric] || metric.replaceAll("_", " ");
// A report's totals as [metric, value], in the order people read them: the funnel's
// steps first, then what an organization or the platform adds.
const ORDER = ["views", "unique_visitors", "registrations", "cancellations", "check_ins", "link_clicks",
  "members_joined", "native_events", "imported_events", "source_failures", "sign_ups", "events_published",
  "organizations_created", "searches"];
const rank = (metric) => (ORDER.includes(metric) ? ORDER.indexOf(metric) : ORDER.length);
const ordered = (totals) => Object.entries(totals).sort(([a], [b]) => rank(a) - rank(b));

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN);
    showLogin(T.session_ended);
    throw new Error("unauthorized");
  }
  return response;
}

async function problemText(response) {
  try {
    const p = await response.json();
    return p.detail || p.title || response.statusText;
  } catch (_) {
    return response.statusText;
  }
}

function showLogin(message) {
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

// A sign-in through an identity provider came back with a one-time code, kept here
// while the account's second factor is asked for.
let signInCode = null;
const SIGN_IN_STATE = "veche.sign_in_state";

async function logIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const second = $("code-label").hidden ? undefined : $("code").value;
  const response = signInCode
    ? await fetch("/api/v1/auth/oauth/exchange", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: signInCode, second_factor_code: second }),
      })
    : await fetch("/api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: $("email").value, password: $("password").value, code: second }),
      });
  if (!response.ok) {
    const problem = await response.clone().json().catch(() => ({}));
    if (String(problem.type).endsWith("/second-factor-required")) {
      // The password was right; the account also takes a code.
      $("code-label").hidden = false;
      $("code").focus();
      $("login-error").textContent = T.enter_code;
      return;
    }
    // A code that did not sign in is spent or dead: the next try is a password login.
    signInCode = null;
    if (problem.provider) {
      // The email's domain signs in through its company's provider: point at its button.
      document.querySelector(`#providers button[data-provider="${CSS.escape(problem.provider)}"]`)?.focus();
    }
    $("login-error").textContent = await problemText(response);
    return;
  }
  const body = await response.json();
  sessionStorage.setItem(TOKEN, body.access_token);
  signInCode = null;
  $("password").value = "";
  $("code").value = "";
  $("code-label").hidden = true;
  await start();
}

// A day in the browser's own calendar, as a date input holds it.
function localDate(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// What the access token says of its holder (its signature is the server's business).
function claims() {
  try {
    const payload = sessionStorage.getItem(TOKEN).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0))));
  } catch (_) {
    return {};
  }
}

// The signed-in person's language, when the page is in another: load it in theirs.
async function followPreference() {
  const response = await api("/api/v1/users/me/preferences");
  if (!response.ok) return false;
  const primary = String((await response.json()).language || "en").split("-")[0].toLowerCase();
  const wanted = primary === "ru" ? "ru" : "en";
  if (wanted === document.documentElement.lang) return false;
  location.replace(`/dashboard?lang=${wanted}`);
  return true;
}

async function start() {
  if (await followPreference()) return;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  const now = Date.now();
  if (!$("from").value) $("from").value = localDate(now - 29 * DAY_MS);
  if (!$("to").value) $("to").value = localDate(now);
  const scope = $("scope");
  scope.replaceChildren();
  const response = await api("/api/v1/users/me/organizations?limit=100");
  const organizations = response.ok ? (await response.json()).items : [];
  // An organization's report is for its admins and owners.
  for (const org of organizations.filter((o) => o.role === "owner" || o.role === "admin")) {
    scope.append(new Option(`${org.name} (${T.roles[org.role] || org.role})`, `organization:${org.id}`));
  }
  // Only the reports this person may read are offered.
  if ((claims().roles || []).includes("admin")) scope.append(new Option(T.platform, "platform"));
  if (!scope.options.length) {
    $("query").hidden = true;
    $("error").textContent = T.no_organizations;
    return;
  }
  $("query").hidden = false;
  await loadEvents();
  await show();
}

async function loadEvents() {
  const select = $("event");
  select.replaceChildren(new Option(T.all_events, ""));
  const [kind, id] = $("scope").value.split(":");
  select.disabled = kind !== "organization";
  if (kind !== "organization") return;
  const response = await api(`/api/v1/events?organization_id=${encodeURIComponent(id)}&limit=100`);
  if (!response.ok) return;
  for (const event of (await response.json()).items) {
    select.append(new Option(event.title, event.id));
  }
}

// The report's address for the chosen scope, from one day to another (both whole, in
// the browser's time zone).
function reportPath(from = $("from").value, to = $("to").value) {
  const [kind, id] = $("scope").value.split(":");
  const event = $("event").value;
  let path = "/api/v1/analytics/platform";
  if (kind === "organization") {
    path = event ? `/api/v1/analytics/events/${event}` : `/api/v1/analytics/organizations/${id}`;
  }
  const time_zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const query = new URLSearchParams({ from, to, time_zone, bucket: $("bucket").value });
  return `${path}?${query}`;
}

// The period of as many days just before the chosen one, for comparison.
function previousPeriod() {
  const from = Date.parse(`${$("from").value}T12:00:00Z`);
  const to = Date.parse(`${$("to").value}T12:00:00Z`);
  const days = Math.round((to - from) / DAY_MS) + 1;
  const iso = (ms) => new Date(ms).toISOString().slice(0, 10);
  return [iso(from - days * DAY_MS), iso(from - DAY_MS)];
}

let chart = null;

async function show(event) {
  if (event) event.preventDefault();
  $("error").textContent = "";
  const [response, before] = await Promise.all([api(reportPath()), api(reportPath(...previousPeriod()))]);
  if (!response.ok) {
    $("report").hidden = true;
    $("error").textContent = await problemText(response);
    return;
  }
  const report = await response.json();
  const previous = before.ok ? (await before.json()).totals : {};
  const scope = $("scope");
  const eventSelect = $("event");
  $("title").textContent = eventSelect.value
    ? eventSelect.options[eventSelect.selectedIndex].text
    : scope.options[scope.selectedIndex].text;
  $("period").textContent = `${$("from").value} – ${$("to").value}`;
  renderTotals(report.totals, previous);
  renderSeries(report);
  renderBars($("bars"), ordered(report.totals));
  const f = report.funnel;
  $("funnel-section").hidden = !f;
  if (f) renderBars($("funnel"), [["views", f.views], ["registrations", f.registrations], ["check_ins", f.check_ins]], true);
  renderTop(report);
  const active = $("active-users");
  active.hidden = report.active_users === undefined;
  active.textContent = fill(T.active_users, { n: report.active_users });
  $("report").hidden = false;
}

// Top events (of an organization) or organizations (of the platform), by registrations,
// named after the options the page already knows.
function renderTop(report) {
  const ranked = report.top_events || report.top_organizations;
  $("top-section").hidden = !ranked || !ranked.length;
  if (!ranked) return;
  $("top-title").textContent = report.top_events ? T.top_events : T.top_organizations;
  const names = new Map();
  for (const o of $("event").options) names.set(o.value, o.text);
  for (const o of $("scope").options) names.set(o.value.replace("organization:", ""), o.text);
  renderBars($("top"), ranked.map((r) => [names.get(r.id) || r.id, r.registrations]), false, (name) => name);
}

// Each total, the previous period's, and the change in percent ("—" from nothing).
function renderTotals(totals, previous) {
  const body = $("totals").tBodies[0];
  body.replaceChildren();
  for (const [metric, value] of ordered(totals)) {
    const row = body.insertRow();
    row.dataset.metric = metric;
    const th = document.createElement("th");
    th.textContent = label(metric);
    row.append(th);
    row.insertCell().textContent = String(value);
    const before = previous[metric];
    const old = row.insertCell();
    old.className = "previous";
    old.textContent = before === undefined ? "—" : String(before);
    const change = row.insertCell();
    change.className = "change";
    change.textContent = before ? `${value >= before ? "+" : "−"}${Math.abs(Math.round((100 * (value - before)) / before))}%` : "—";
  }
}

const COLORS = ["#3b6fd8", "#d8573b", "#2f9e6e", "#9b59b6", "#c9a227", "#444", "#e07bb0"];

function renderSeries(report) {
  const metrics = ordered(report.totals).map(([metric]) => metric);
  const xs = report.series.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...metrics.map((m) => report.series.map((b) => b.values[m] ?? 0))];
  const options = {
    width: Math.min(960, document.body.clientWidth - 32),
    height: 300,
    series: [{ label: T.time }, ...metrics.map((m, i) => ({ label: label(m), stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{}, { label: T.count }],
  };
  if (chart) chart.destroy();
  const target = $("series-chart");
  target.replaceChildren();
  chart = new uPlot(options, data, target);
}

// Bars of [metric, value] entries, named by `name` (a metric's label by default).
function renderBars(target, entries, withShare, name = label) {
  target.replaceChildren();
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const first = entries.length ? entries[0][1] : 0;
  for (const [key, value] of entries) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.metric = key;
    const caption = document.createElement("span");
    caption.textContent = name(key);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * value) / max}%`;
    const number = document.createElement("span");
    number.className = "value";
    number.textContent = withShare && first > 0 ? `${value} (${Math.round((100 * value) / first)}%)` : String(value);
    row.append(caption, bar, number);
    target.append(row);
  }
}

async function downloadCsv() {
  $("error").textContent = "";
  const response = await api(reportPath(), { headers: { Accept: "text/csv" } });
  if (!response.ok) {
    $("error").textContent = await problemText(response);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = "veche-report.csv";
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

// Buttons for the identity providers the platform offers.
async function offerProviders() {
  const response = await fetch("/api/v1/auth/providers");
  if (!response.ok) return;
  const providers = await response.json();
  const box = $("providers");
  for (const p of providers) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.provider = p.id;
    button.textContent = fill(T.sign_in_with, { name: p.name });
    button.addEventListener("click", () => {
      const state = crypto.randomUUID();
      sessionStorage.setItem(SIGN_IN_STATE, state);
      const back = encodeURIComponent(`${location.origin}/dashboard`);
      location.assign(`/api/v1/auth/oauth/${encodeURIComponent(p.id)}/start?redirect_uri=${back}&state=${state}`);
    });
    box.append(button);
  }
  box.hidden = providers.length === 0;
}

// Back from a provider: take the code (or the error) out of the address bar, check the
// state this page made, and exchange the code for tokens.
async function finishProviderSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  history.replaceState(null, "", location.pathname);
  const expected = sessionStorage.getItem(SIGN_IN_STATE);
  sessionStorage.removeItem(SIGN_IN_STATE);
  if (!expected || params.get("state") !== expected) {
    showLogin(T.not_started_here);
    return true;
  }
  if (params.has("error")) {
    showLogin(params.get("error_description") || T.refused);
    return true;
  }
  signInCode = params.get("code");
  showLogin();
  await logIn(new Event("submit"));
  return true;
}

$("login").addEventListener("submit", logIn);
$("query").addEventListener("submit", show);
$("scope").addEventListener("change", loadEvents);
$("csv").addEventListener("click", downloadCsv);
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  showLogin();
});
offerProviders();
finishProviderSignIn().then((handled) => {
  if (!handled && sessionStorage.getItem(TOKEN)) start().catch(() => showLogin());
});
