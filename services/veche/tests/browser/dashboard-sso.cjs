// Signing in to the dashboard through an OpenID provider, in a real browser: the
// dashboard offers the provider, the provider's own login form signs in, and the browser
// comes back to the dashboard signed in, with the one-time code gone from the address.
//
// Environment: VECHE_URL, LOGIN (a login name at the test provider), SCREENSHOT,
// VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

run("dashboard-sso", async (page, failures) => {
  await page.goto(`${env("VECHE_URL")}/dashboard`);
  await page.click('#providers button[data-provider="corp"]');
  // The provider's login form, then its consent form when it asks.
  await page.waitForSelector('input[name="login"]', { timeout: 15000 });
  await page.fill('input[name="login"]', env("LOGIN"));
  await page.fill('input[name="password"]', "any password");
  await page.click('button[type="submit"]');
  const consent = await page.waitForSelector('input[name="prompt"][value="consent"]', { state: "attached", timeout: 5000 }).catch(() => null);
  if (consent) await page.click('button[type="submit"]');
  await page.waitForSelector("#app:not([hidden])", { timeout: 15000 }).catch(async () => {
    const said = await page.locator("#login-error").textContent({ timeout: 1000 }).catch(() => null);
    failures.push(`not signed in at ${page.url()}; the page says: ${said ?? (await page.content()).slice(0, 600)}`);
  });
  const url = new URL(page.url());
  if (url.pathname !== "/dashboard" || url.search) failures.push(`the address kept the code: ${page.url()}`);
}, { origins: [env("VECHE_URL")] });
