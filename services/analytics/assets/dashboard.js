// The analytics dashboard: log in, pick a report (the platform, an organization, or one
// of its events) and a period, and see its totals, a time series, bars and the funnel.
// Plain browser JavaScript, no build step; charts by uPlot (vendored next to this file).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = "veche.access_token";
const DAY_MS = 86400000;

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN);
    showLogin("Your session has ended: log in again.");
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
      $("login-error").textContent = "Enter the code from your authenticator app, or a recovery code.";
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

function isoDate(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  const now = Date.now();
  if (!$("from").value) $("from").value = isoDate(now - 29 * DAY_MS);
  if (!$("to").value) $("to").value = isoDate(now + DAY_MS);
  const scope = $("scope");
  scope.replaceChildren();
  const response = await api("/api/v1/users/me/organizations?limit=100");
  const organizations = response.ok ? (await response.json()).items : [];
  for (const org of organizations) {
    scope.append(new Option(`${org.name} (${org.role})`, `organization:${org.id}`));
  }
  scope.append(new Option("The platform (administrators)", "platform"));
  await loadEvents();
}

async function loadEvents() {
  const select = $("event");
  select.replaceChildren(new Option("All events of the organization", ""));
  const [kind, id] = $("scope").value.split(":");
  select.disabled = kind !== "organization";
  if (kind !== "organization") return;
  const response = await api(`/api/v1/events?organization_id=${encodeURIComponent(id)}&limit=100`);
  if (!response.ok) return;
  for (const event of (await response.json()).items) {
    select.append(new Option(event.title, event.id));
  }
}

function reportPath() {
  const [kind, id] = $("scope").value.split(":");
  const event = $("event").value;
  let path = "/api/v1/analytics/platform";
  if (kind === "organization") {
    path = event ? `/api/v1/analytics/events/${event}` : `/api/v1/analytics/organizations/${id}`;
  }
  const from = `${$("from").value}T00:00:00Z`;
  const to = `${$("to").value}T00:00:00Z`;
  const query = new URLSearchParams({ from, to, bucket: $("bucket").value });
  return `${path}?${query}`;
}

let chart = null;

async function show(event) {
  if (event) event.preventDefault();
  $("error").textContent = "";
  const response = await api(reportPath());
  if (!response.ok) {
    $("report").hidden = true;
    $("error").textContent = await problemText(response);
    return;
  }
  const report = await response.json();
  const scope = $("scope");
  const eventSelect = $("event");
  $("title").textContent = eventSelect.value
    ? eventSelect.options[eventSelect.selectedIndex].text
    : scope.options[scope.selectedIndex].text;
  renderTotals(report.totals);
  renderSeries(report);
  renderBars($("bars"), Object.entries(report.totals));
  const funnel = "views" in report.totals && "check_ins" in report.totals;
  $("funnel-section").hidden = !funnel;
  if (funnel) {
    const t = report.totals;
    renderBars($("funnel"), [["views", t.views], ["registrations", t.registrations], ["check_ins", t.check_ins]], true);
  }
  renderTop(report);
  const active = $("active-users");
  active.hidden = report.active_users === undefined;
  active.textContent = `Active users in the period: ${report.active_users}`;
  $("report").hidden = false;
}

// Top events (of an organization) or organizations (of the platform), by registrations,
// named after the options the page already knows.
function renderTop(report) {
  const ranked = report.top_events || report.top_organizations;
  $("top-section").hidden = !ranked;
  if (!ranked) return;
  $("top-title").textContent = report.top_events ? "Top events" : "Top organizations";
  const names = new Map();
  for (const o of $("event").options) names.set(o.value, o.text);
  for (const o of $("scope").options) names.set(o.value.replace("organization:", ""), o.text);
  renderBars($("top"), ranked.map((r) => [names.get(r.id) || r.id, r.registrations]));
}

function renderTotals(totals) {
  const body = $("totals").tBodies[0];
  body.replaceChildren();
  for (const [metric, value] of Object.entries(totals)) {
    const row = body.insertRow();
    row.dataset.metric = metric;
    const th = document.createElement("th");
    th.textContent = metric;
    row.append(th);
    row.insertCell().textContent = String(value);
  }
}

const COLORS = ["#3b6fd8", "#d8573b", "#2f9e6e", "#9b59b6", "#c9a227", "#444", "#e07bb0"];

function renderSeries(report) {
  const metrics = Object.keys(report.totals);
  const xs = report.series.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...metrics.map((m) => report.series.map((b) => b.values[m] ?? 0))];
  const options = {
    width: Math.min(960, document.body.clientWidth - 32),
    height: 300,
    series: [{}, ...metrics.map((m, i) => ({ label: m, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{}, { label: "count" }],
  };
  if (chart) chart.destroy();
  const target = $("series-chart");
  target.replaceChildren();
  chart = new uPlot(options, data, target);
}

function renderBars(target, entries, withShare) {
  target.replaceChildren();
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const first = entries.length ? entries[0][1] : 0;
  for (const [name, value] of entries) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.metric = name;
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * value) / max}%`;
    const number = document.createElement("span");
    number.className = "value";
    number.textContent = withShare && first > 0 ? `${value} (${Math.round((100 * value) / first)}%)` : String(value);
    row.append(label, bar, number);
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
    button.textContent = `Sign in with ${p.name}`;
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
    showLogin("That sign-in did not start here: try again.");
    return true;
  }
  if (params.has("error")) {
    showLogin(params.get("error_description") || "The sign-in was refused.");
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
