// The page an invitation mail links to: read the single-use token from the link, take it
// out of the address bar (and out of history and referrers), then log in, or sign up,
// and accept. Plain JavaScript against the public API; no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
let signingUp = false;

async function problem(response) {
  try {
    const p = await response.json();
    return p.detail || p.title || response.statusText;
  } catch (_) {
    return response.statusText;
  }
}

async function post(path, body, bearer) {
  const headers = { "Content-Type": "application/json" };
  if (bearer) headers.Authorization = "Bearer " + bearer;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
}

async function accept(event) {
  event.preventDefault();
  $("error").textContent = "";
  const email = $("email").value;
  const password = $("password").value;
  if (signingUp) {
    const body = { email, password, display_name: $("name").value || email.split("@")[0] };
    const r = await post("/api/v1/auth/register", body);
    if (!r.ok) return void ($("error").textContent = await problem(r));
  }
  const login = await post("/api/v1/auth/login", { email, password });
  if (!login.ok) return void ($("error").textContent = await problem(login));
  const access = (await login.json()).access_token;
  const r = await post("/api/v1/organizations/invitations/accept", { token }, access);
  if (!r.ok) return void ($("error").textContent = await problem(r));
  const member = await r.json();
  const org = await fetch(`/api/v1/organizations/${member.organization_id}`, {
    headers: { Authorization: "Bearer " + access },
  });
  const name = org.ok ? (await org.json()).name : "the organization";
  $("form").hidden = true;
  $("intro").hidden = true;
  $("done").hidden = false;
  $("done").textContent = `Welcome to ${name}: you are a ${member.role} now.`;
}

function toggleMode() {
  signingUp = !signingUp;
  $("name-label").hidden = !signingUp;
  $("submit").textContent = signingUp ? "Sign up and accept" : "Log in and accept";
  $("mode").textContent = signingUp ? "I have an account" : "I have no account yet";
  $("password").autocomplete = signingUp ? "new-password" : "current-password";
}

if (!token) {
  $("form").hidden = true;
  $("error").textContent = "This link has no invitation in it: open the link from the invitation mail.";
}
$("form").addEventListener("submit", accept);
$("mode").addEventListener("click", toggleMode);
