// The invitation page in a real browser: open the link from the mail, sign up with the
// invited address (first with a password the server refuses, whose message shows under
// the input), accept, and see the welcome with a link onward. The token must leave the
// address bar.
//
// Environment: LINK (from the mail), EMAIL, PASSWORD, ORG_NAME, SCREENSHOT,
// VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

run("invitation", async (page, failures) => {
  await page.goto(env("LINK"));
  if (page.url().includes("token=")) failures.push(`the token stayed in the address bar: ${page.url()}`);
  await page.click("#mode");
  await page.fill("#email", env("EMAIL"));
  await page.fill("#name", "Invitee");
  // A password the server refuses: its message shows under the input.
  await page.fill("#password", "short");
  await page.click("#submit");
  const note = await page.waitForSelector('.field-error[data-field="password"]', { timeout: 15000 }).catch(() => null);
  if (!note) failures.push(`no field error for a short password; the page says: ${await page.textContent("#error")}`);
  await page.fill("#password", env("PASSWORD"));
  await page.click("#submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`no welcome; the page says: ${await page.textContent("#error")}`);
  });
  const done = (await page.textContent("#done")) || "";
  if (!done.includes(env("ORG_NAME")) || !done.includes("member")) failures.push(`welcome: ${done}`);
  if (await page.$(".field-error")) failures.push("the old field error stayed after success");
  const onward = await page.getAttribute("#done .onward a", "href").catch(() => null);
  if (onward !== "/dashboard") failures.push(`no link onward: ${onward}`);
}, { expected: [422] });
