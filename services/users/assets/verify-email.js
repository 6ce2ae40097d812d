// Where a verification mail's link lands: confirm the address with the token from the
// link (on a press, so a mail scanner that opens links confirms nothing), or, when the
// link is dead, ask for a new one. Uses page.js; no build step.
"use strict";

const token = takeToken();

$("confirm").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const r = await post("/api/v1/auth/verify-email", { token });
  if (r.ok) return finish(T.confirmed);
  if (r.status === 410) return swapForms("confirm", "resend", T.dead_link);
  await showProblem(r);
});

$("resend").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const r = await post("/api/v1/auth/verify-email/resend", { email: $("email").value });
  if (!r.ok) return showProblem(r, { email: "email" });
  finish(T.resent);
});

if (!token) swapForms("confirm", "resend", T.no_token);
