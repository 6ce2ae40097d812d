// The invitation page in a real browser: open the link from the mail, sign up with the
// invited address, accept, and see the welcome. The token must leave the address bar.
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
  await page.fill("#password", env("PASSWORD"));
  await page.fill("#name", "Invitee");
  await page.click("#submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`no welcome; the page says: ${await page.textContent("#error")}`);
  });
  const done = (await page.textContent("#done")) || "";
  if (!done.includes(env("ORG_NAME")) || !done.includes("member")) failures.push(`welcome: ${done}`);
});
