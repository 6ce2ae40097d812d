// The mail pages in Russian, in a real browser. A Russian reader's reset link names the
// language of its mail, and the page follows it although this browser asks for English;
// every message the page's script writes is Russian too. Then a browser that asks for
// Russian gets a page opened without a link's language in Russian.
//
// Environment: LINK (a reset link from a Russian mail), VERIFY_URL (the verify-email
// page, no token), NEW_PASSWORD, SCREENSHOT, VECHE_CHROMIUM.
"use strict";
const { env, run } = require("./lib.cjs");

async function expectText(page, selector, needle, failures) {
  const text = (await page.textContent(selector)) || "";
  if (!text.includes(needle)) failures.push(`${selector} says ${JSON.stringify(text)}, not ${JSON.stringify(needle)}`);
}

run("pages-ru", async (page, failures) => {
  await page.goto(env("LINK"));
  if ((await page.getAttribute("html", "lang")) !== "ru") failures.push("the page is not marked Russian");
  await expectText(page, "h1", "Новый пароль", failures);
  await expectText(page, "#submit", "Сменить пароль", failures);

  await page.fill("#password", "short");
  await page.fill("#again", "short");
  await page.click("#submit");
  await page.waitForSelector('.field-error[data-field="password"]', { timeout: 15000 });
  await expectText(page, "#error", "Исправьте отмеченное.", failures);

  await page.fill("#password", env("NEW_PASSWORD"));
  await page.fill("#again", env("NEW_PASSWORD") + "x");
  await page.click("#submit");
  await expectText(page, "#error", "Пароли не совпадают.", failures);

  await page.fill("#again", env("NEW_PASSWORD"));
  await page.click("#submit");
  await page.waitForSelector("#done:not([hidden])", { timeout: 15000 }).catch(async () => {
    failures.push(`not changed; the page says: ${await page.textContent("#error")}`);
  });
  await expectText(page, "#done", "Пароль изменён", failures);
  await expectText(page, "#done .onward a", "Войти", failures);

  // A browser that prefers Russian, and a page opened with no language in its address.
  const russian = await page.context().browser().newPage({ locale: "ru-RU" });
  await russian.goto(env("VERIFY_URL"));
  if ((await russian.getAttribute("html", "lang")) !== "ru") failures.push("Accept-Language was not followed");
  await expectText(russian, "h1", "Подтвердите адрес почты", failures);
  await expectText(russian, "#error", "В ссылке нет кода", failures);
  await russian.close();
}, { expected: [422] });
