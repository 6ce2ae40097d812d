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
    $("error").textContent = "The two passwords differ.";
    return;
  }
  const r = await post("/api/v1/auth/password-reset/confirm", { token, password });
  if (r.ok) return finish("Your password is changed, and every other session is logged out.");
  if (r.status === 410) return swapForms("reset", "request", "This link is invalid, used or expired.");
  await showProblem(r, { password: "password" });
});

$("request").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const r = await post("/api/v1/auth/password-reset", { email: $("email").value });
  if (!r.ok) return showProblem(r, { email: "email" });
  finish("If that address has an account, a new link is on its way.");
});

if (!token) swapForms("reset", "request", "This link has no token in it: open the link from the mail, or ask for a new one.");
