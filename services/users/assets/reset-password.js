// Where a password-reset mail's link lands: set a new password with the token from the
// link; the server's rules (length, breached or too simple) come back as field errors
// under the input. A dead link offers to send a new one. Uses page.js; no build step.
"use strict";

const token = takeToken();

$("reset").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const password = $("password").value;
  if (password !== $("again").value) {
    $("error").textContent = T.differ;
    return;
  }
  const r = await post("/api/v1/auth/password-reset/confirm", { token, password });
  if (r.ok) return finish(T.changed);
  if (r.status === 410) return swapForms("reset", "request", T.dead_link);
  await showProblem(r, { password: "password" });
});

$("request").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const r = await post("/api/v1/auth/password-reset", { email: $("email").value });
  if (!r.ok) return showProblem(r, { email: "email" });
  finish(T.resent);
});

if (!token) swapForms("reset", "request", T.no_token);
