// The reset-password page in a real browser: open the link from the mail, try a password
// the server refuses and see its message under the input, try two that differ, then set
// a good one and see it done. The token must leave the address bar.
//
// Environment: LINK (from the mail), NEW_PASSWORD, SCREENSHOT, VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

run("reset-password", async (page, failures) => {
  await page.goto(env("LINK"));
  if (page.url().includes("token=")) failures.push(`the token stayed in the address bar: ${page.url()}`);

  await page.fill("#password", "short");
  await page.fill("#again", "short");
  await page.click("#submit");
  const note = await page
    .waitForSelector('.field-error[data-field="password"]', { timeout: 15000 })
    .catch(() => null);
  if (!note) failures.push(`no field error for a short password; the page says: ${await page.textContent("#error")}`);
  else if (!(await note.textContent()).includes("12")) failures.push(`field error: ${await note.textContent()}`);
  if ((await page.getAttribute("#password", "aria-invalid")) !== "true") failures.push("the input is not marked invalid");

  await page.fill("#password", env("NEW_PASSWORD"));
  await page.fill("#again", env("NEW_PASSWORD") + "x");
  await page.click("#submit");
  const differ = (await page.textContent("#error")) || "";
  if (!differ.includes("differ")) failures.push(`mismatch says: ${differ}`);
  if (await page.$(".field-error")) failures.push("an old field error stayed");

  await page.fill("#again", env("NEW_PASSWORD"));
  await page.click("#submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`not changed; the page says: ${await page.textContent("#error")}`);
  });
  const done = (await page.textContent("#done")) || "";
  if (!done.includes("password is changed")) failures.push(`done: ${done}`);
}, { expected: [422] });
