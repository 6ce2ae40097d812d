// Logging in to the dashboard with a second factor, in a real browser: the password
// alone is answered with a field for the code; the code from the app gets in.
//
// Environment: VECHE_URL, EMAIL, PASSWORD, CODE (from pyotp), SCREENSHOT, VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

run("dashboard-login-code", async (page, failures) => {
  await page.goto(`${env("VECHE_URL")}/dashboard`);
  await page.fill("#email", env("EMAIL"));
  await page.fill("#password", env("PASSWORD"));
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#code-label:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`no field for the code; the page says: ${await page.textContent("#login-error")}`);
  });
  const asked = (await page.textContent("#login-error")) || "";
  if (!asked.includes("authenticator app")) failures.push(`asking for the code: ${asked}`);
  await page.fill("#code", env("CODE"));
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#app:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`not logged in with the code; the page says: ${await page.textContent("#login-error")}`);
  });
}, { expected: [401] });
