// The dashboard in a real browser (Debian's chromium, driven by playwright-core): log in
// and see the organization's report at once (no platform report offered to an
// organizer), pick its event, check the numbers on the page against the ones the test
// expects, with human labels and the period before beside them, download the CSV; then
// the same person with a Russian preference sees it all in Russian. A screenshot at the end.
//
// Environment: VECHE_URL, EMAIL, PASSWORD, ORG_ID, EVENT_ID, EXPECT (JSON totals),
// RU_EMAIL (an organizer of the same organization whose language is Russian),
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
  // The organization's report is shown on login, without asking.
  await page.waitForSelector("#report:not([hidden])", { timeout: 15000 }).catch(() => {
    failures.push("no report shown after logging in");
  });
  if ((await page.inputValue("#scope")) !== `organization:${env("ORG_ID")}`)
    failures.push(`the report shown first is ${await page.inputValue("#scope")}`);
  if (await page.$('#scope option[value="platform"]')) failures.push("an organizer is offered the platform report");
  const checkIns = (await page.textContent('#totals tr[data-metric="check_ins"] th'))?.trim();
  if (checkIns !== "Check-ins") failures.push(`check_ins is labelled ${checkIns}`);
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
    const share = Number((step.match(/\((\d+)%\)/) || [])[1]);
    if (!(share <= 100)) failures.push(`funnel ${metric} is ${step}: a step is within the one before`);
  }
  // Nothing happened in the period before: each total is compared with 0, no change to say.
  for (const metric of Object.keys(expect)) {
    const before = (await page.textContent(`#totals tr[data-metric="${metric}"] td.previous`))?.trim();
    const change = (await page.textContent(`#totals tr[data-metric="${metric}"] td.change`))?.trim();
    if (before !== "0" || change !== "—") failures.push(`previous period of ${metric}: ${before}, ${change}`);
  }
  const canvases = await page.locator("#series-chart canvas").count();
  if (canvases < 1) failures.push("the time-series chart drew no canvas");
  const legend = await page.locator("#series-chart .u-legend .u-series").count();
  if (legend < Object.keys(expect).length) failures.push(`the chart has ${legend} series`);

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csv = fs.readFileSync(await download.path(), "utf8");
  if (!csv.startsWith("start,views,unique_visitors,registrations")) failures.push(`CSV starts: ${csv.slice(0, 80)}`);

  // A person whose preference is Russian, in an English browser: the page turns Russian.
  await page.click("#logout");
  await page.fill("#email", env("RU_EMAIL"));
  await page.fill("#password", env("PASSWORD"));
  await page.click("#login button[type=submit]");
  await page.waitForURL(/lang=ru/, { timeout: 15000 }).catch(() => failures.push("the page did not follow the preference"));
  await page.waitForSelector("#report:not([hidden])", { timeout: 15000 }).catch(() => {
    failures.push("no report shown in Russian");
  });
  if ((await page.getAttribute("html", "lang")) !== "ru") failures.push("the page is not marked Russian");
  const heading = (await page.textContent("h1"))?.trim();
  if (heading !== "Панель Veche") failures.push(`heading: ${heading}`);
  const views = (await page.textContent('#totals tr[data-metric="views"] th'))?.trim();
  if (views !== "Просмотры") failures.push(`views are labelled ${views}`);
  const note = (await page.textContent("#funnel-section .note"))?.trim() || "";
  if (!note.startsWith("Каждый шаг")) failures.push(`funnel note: ${note}`);
});
