// A ticket's QR code, read as a phone at the door would: chromium draws the SVG the API
// served onto a canvas, and jsQR (an independent decoder) reads the pixels. The text
// must be the ticket's code. Inputs: TICKET_SVG (a file), TICKET_CODE.
"use strict";
const fs = require("fs");
const { env, run } = require("./lib.cjs");

run("ticket-qr", async (page, failures) => {
  const svg = fs.readFileSync(env("TICKET_SVG"));
  const src = `data:image/svg+xml;base64,${svg.toString("base64")}`;
  await page.setContent(`<img id="qr" src="${src}" width="300" height="300"><canvas id="c" width="300" height="300"></canvas>`);
  await page.addScriptTag({ path: require.resolve("jsqr/dist/jsQR.js") });
  const text = await page.evaluate(async () => {
    const img = document.getElementById("qr");
    await img.decode();
    const ctx = document.getElementById("c").getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, 300, 300);
    ctx.drawImage(img, 0, 0, 300, 300);
    const pixels = ctx.getImageData(0, 0, 300, 300);
    const found = window.jsQR(pixels.data, 300, 300);
    return found ? found.data : null;
  });
  if (text !== env("TICKET_CODE")) failures.push(`the QR code reads ${JSON.stringify(text)}, not ${env("TICKET_CODE")}`);
});
