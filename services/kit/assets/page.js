// What every small page of Veche shares (served as page.js next to each page's own
// script): the page's words in its reader's language, posting JSON to the public API and
// saying what a problem document means, with each field's message next to its input.
// Plain JavaScript; no build step.
"use strict";

const $ = (id) => document.getElementById(id);

// The page's words, in the language the server chose (the JSON it put in the page).
const T = JSON.parse(($("text") || {}).textContent || "{}");

// `template` with each {name} replaced by `values[name]`.
function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
}

// Takes the one-time token out of the link, the address bar and the history, so it
// reaches no referrer, bookmark or screen share.
function takeToken() {
  const token = new URLSearchParams(location.search).get("token") || "";
  history.replaceState(null, "", location.pathname);
  return token;
}

async function post(path, body, bearer) {
  const headers = { "Content-Type": "application/json" };
  if (bearer) headers.Authorization = "Bearer " + bearer;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
}

// Clears what an earlier answer showed.
function clearErrors() {
  $("error").textContent = "";
  for (const el of document.querySelectorAll(".field-error")) el.remove();
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// Shows a problem (RFC 9457): its detail or title, and each of its `errors[]` under the
// input of that field (`fields` maps a field name to an input id), or in the summary
// when no input on the page has that name.
async function showProblem(response, fields = {}) {
  let p = {};
  try {
    p = await response.json();
  } catch (_) {
    p = {};
  }
  const rest = [];
  for (const e of p.errors || []) {
    const input = fields[e.field] && $(fields[e.field]);
    if (!input) {
      rest.push(`${e.field}: ${e.message}`);
      continue;
    }
    input.setAttribute("aria-invalid", "true");
    const note = document.createElement("span");
    note.className = "field-error";
    note.dataset.field = e.field;
    note.textContent = e.message;
    input.insertAdjacentElement("afterend", note);
  }
  const summary = p.errors && p.errors.length ? T.correct_marked : p.detail || p.title;
  $("error").textContent = [summary || response.statusText || T.went_wrong, ...rest].join(" ");
}

// Swaps one form for another (a dead link's form for the one asking for a new link), and
// says why.
function swapForms(hide, show, message) {
  $(hide).hidden = true;
  $(show).hidden = false;
  $("error").textContent = message;
}

// Hides the form and says what happened, with a link to go on from here.
function finish(message, onward = { href: "/dashboard", text: T.log_in }) {
  for (const el of document.querySelectorAll("form, .intro")) el.hidden = true;
  const done = $("done");
  done.hidden = false;
  done.textContent = message + " ";
  const link = document.createElement("a");
  link.href = onward.href;
  link.textContent = onward.text;
  const p = document.createElement("p");
  p.className = "onward";
  p.append(link);
  done.append(p);
}
