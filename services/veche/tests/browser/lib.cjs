// What every page check shares: the environment, a headless chromium (Debian's, through
// playwright-core), a page that records script errors, a screenshot at the end, and an
// exit status that says whether every check held.
"use strict";
const { chromium } = require("playwright-core");

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Runs `check(page, failures)`; a check pushes what it found wrong onto `failures`.
// `expected` lists the HTTP statuses the check provokes on purpose (chromium logs each
// such answer as a console error); any other error on the console fails the check.
// `origins`, when given, limits that to pages of those origins (another party's pages,
// such as an identity provider's, are not ours to judge). `locale` is the browser's
// language (its Accept-Language).
async function run(name, check, { expected = [], origins = null, locale = "en-US" } = {}) {
  const provoked = (text) =>
    expected.some((status) => text.startsWith(`Failed to load resource: the server responded with a status of ${status} `));
  const browser = await chromium.launch({
    executablePath: env("VECHE_CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const failures = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 }, acceptDownloads: true, locale });
    const errors = [];
    const ours = () => !origins || origins.some((o) => page.url().startsWith(o));
    page.on("pageerror", (e) => ours() && errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && ours() && !provoked(m.text()) && errors.push(m.text()));
    await check(page, failures);
    await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
    if (errors.length) failures.push(`browser errors: ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.error(failures.join("\n"));
    process.exit(1);
  }
  console.log(`${name} ok`);
}

module.exports = { env, run };
