// The dashboard in a real browser (Debian's chromium, driven by playwright-core): log in,
// pick the organization and its event, show the report, check the numbers on the page
// against the ones the test expects, download the CSV, and save a screenshot.
//
// Environment: VECHE_URL, EMAIL, PASSWORD, ORG_ID, EVENT_ID, EXPECT (JSON totals),
// SCREENSHOT (path), VECHE_CHROMIUM (the browser).
"use strict";
const fs = require("fs");
const { env, run } = require("./lib.cjs");

run("dashboard", async (page, failures) => {
  const expect = JSON.parse(env("EXPECT"));
  await page.goto(`${env("VECHE_URL")}/dashboard`);
  await page.fill("#email", env("EMAIL"));
  await page.fill("#password", env("PASSWORD"));
  await page.click("#login button[type=submit]");
  await page.waitForSelector(`#scope option[value="organization:${env("ORG_ID")}"]`, { state: "attached" });
  await page.selectOption("#scope", `organization:${env("ORG_ID")}`);
  await page.waitForSelector(`#event option[value="${env("EVENT_ID")}"]`, { state: "attached" });
  await page.selectOption("#event", env("EVENT_ID"));
  await page.click("#query button[type=submit]");
  await page.waitForSelector("#report:not([hidden])");
  if (await page.isVisible("#login")) failures.push("the login form is still shown after logging in");

  for (const [metric, want] of Object.entries(expect)) {
    const shown = (await page.textContent(`#totals tr[data-metric="${metric}"] td`))?.trim();
    if (shown !== String(want)) failures.push(`totals ${metric}: page shows ${shown}, expected ${want}`);
    const bar = (await page.textContent(`#bars .row[data-metric="${metric}"] .value`))?.trim();
    if (bar !== String(want)) failures.push(`bar ${metric}: page shows ${bar}, expected ${want}`);
  }
  for (const metric of ["views", "registrations", "check_ins"]) {
    const step = (await page.textContent(`#funnel .row[data-metric="${metric}"] .value`))?.trim() ?? "";
    if (!step.startsWith(String(expect[metric])))
      failures.push(`funnel ${metric}: ${step}, expected ${expect[metric]}`);
  }
  const canvases = await page.locator("#series-chart canvas").count();
  if (canvases < 1) failures.push("the time-series chart drew no canvas");
  const legend = await page.locator("#series-chart .u-legend .u-series").count();
  if (legend < Object.keys(expect).length) failures.push(`the chart has ${legend} series`);

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csv = fs.readFileSync(await download.path(), "utf8");
  if (!csv.startsWith("start,views,unique_visitors,registrations")) failures.push(`CSV starts: ${csv.slice(0, 80)}`);
});
