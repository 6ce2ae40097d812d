// The verify-email page in a real browser: open the link from the mail (the token must
// leave the address bar), confirm, and see it done with a way on; open the spent link
// again and be offered a new one instead.
//
// Environment: LINK (from the mail), EMAIL, SCREENSHOT, VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

run("verify-email", async (page, failures) => {
  await page.goto(env("LINK"));
  if (page.url().includes("token=")) failures.push(`the token stayed in the address bar: ${page.url()}`);
  await page.click("#submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`not confirmed; the page says: ${await page.textContent("#error")}`);
  });
  const done = (await page.textContent("#done")) || "";
  if (!done.includes("confirmed")) failures.push(`done: ${done}`);
  const onward = await page.getAttribute("#done .onward a", "href").catch(() => null);
  if (onward !== "/dashboard") failures.push(`no link onward: ${onward}`);

  // The link is spent now: the page says so and offers a new one.
  await page.goto(env("LINK"));
  await page.click("#submit");
  await page.waitForSelector("#resend:not([hidden])", { timeout: 15000 });
  const error = (await page.textContent("#error")) || "";
  if (!error.includes("used or expired")) failures.push(`a spent link says: ${error}`);
  await page.fill("#email", env("EMAIL"));
  await page.click("#resend-submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 });
}, { expected: [410] });
