// The page an invitation mail links to: take the single-use token out of the address
// bar, then log in, or sign up, and accept. Field errors show under their inputs; once
// in, the page links onward. Uses page.js (served next to it); no build step.
"use strict";

const token = takeToken();
let signingUp = false;
const FIELDS = { email: "email", password: "password", display_name: "name" };

async function accept(event) {
  event.preventDefault();
  clearErrors();
  const email = $("email").value;
  const password = $("password").value;
  if (signingUp) {
    const body = { email, password, display_name: $("name").value || email.split("@")[0] };
    const r = await post("/api/v1/auth/register", body);
    if (!r.ok) return showProblem(r, FIELDS);
  }
  const credentials = { email, password };
  if (!$("code-label").hidden) credentials.code = $("code").value;
  const login = await post("/api/v1/auth/login", credentials);
  if (!login.ok) {
    const problem = await login.clone().json().catch(() => ({}));
    if (!String(problem.type).endsWith("/second-factor-required")) return showProblem(login, FIELDS);
    // The password was right; the account also takes a code.
    $("code-label").hidden = false;
    $("code").focus();
    $("error").textContent = T.enter_code;
    return;
  }
  const access = (await login.json()).access_token;
  const r = await post("/api/v1/organizations/invitations/accept", { token }, access);
  if (!r.ok) return showProblem(r);
  const member = await r.json();
  const org = await fetch(`/api/v1/organizations/${member.organization_id}`, {
    headers: { Authorization: "Bearer " + access },
  });
  const name = org.ok ? (await org.json()).name : T.the_organization;
  finish(fill(T.welcome, { name, role: T.roles[member.role] || member.role }), {
    href: "/dashboard",
    text: fill(T.open_dashboard, { name }),
  });
}

function toggleMode() {
  signingUp = !signingUp;
  clearErrors();
  $("name-label").hidden = !signingUp;
  $("submit").textContent = signingUp ? T.sign_up_accept : T.log_in_accept;
  $("mode").textContent = signingUp ? T.have_account : T.no_account;
  $("password").autocomplete = signingUp ? "new-password" : "current-password";
}

if (!token) {
  $("form").hidden = true;
  $("error").textContent = T.no_invitation;
}
$("form").addEventListener("submit", accept);
$("mode").addEventListener("click", toggleMode);
