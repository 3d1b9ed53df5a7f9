// SPDX-License-Identifier: Apache-2.0
// Drives chitin's web chat in headless Chromium: opens WEBCHAT_URL (http://127.0.0.1:PORT/#token=…),
// checks the token left the address bar, sends a message and waits for the streamed reply, and
// optionally a turn with a tool call (line with status ok) and a stopped run.
// Runs in: tests (e2e; needs /usr/bin/chromium and `npm ci` in this folder)
//
// Environment:
//   WEBCHAT_URL            required, the page URL with #token=…
//   WEBCHAT_SCREENSHOT     where to save a PNG of the final page (also saved on failure)
//   WEBCHAT_MESSAGE        first message (default "hello")
//   WEBCHAT_EXPECT_REPLY   a substring the first reply must contain
//   WEBCHAT_TOOL_MESSAGE   a message that makes the agent call a tool; its tool line must end "ok"
//   WEBCHAT_ABORT_MESSAGE  a message whose run is stopped with the Stop button
//   WEBCHAT_APPROVAL_MESSAGE  a message whose run asks for a confirmation; the card's Approve
//                          button is clicked and the run must finish with every tool ok
//   WEBCHAT_EXPECT_APPROVAL   a substring the confirmation card must show
//   WEBCHAT_EXPECT_FULL_CALL  a substring the card's full view must show once opened (one click)
//   WEBCHAT_EXPECT_SHORTENED  "1": the card's line must be shortened and say so, naming
//                          `chitin approvals show ID`
//                          (every card is also checked to show no raw control, bidi or
//                          zero-width character: the gateway sends them escaped)
//   WEBCHAT_QR_ACCOUNT     "kind/account" the Channels panel must list as waiting for a login;
//                          its Link button is clicked and the QR code the gateway sent as module
//                          rows (a 21x21 checkerboard from the fake service) must be painted:
//                          dark and light modules where the rows say, a light quiet zone;
//                          then a phone number typed in its entry must get the fake's pairing
//                          code (K7QW-2M9X for +1 555 123 4567) shown with the steps on the phone
//   WEBCHAT_TIMEOUT_MS     per step (default 30000)
//   CHROMIUM               browser binary (default /usr/bin/chromium)
// Exit status 0 when every check holds, 1 otherwise.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const url = process.env.WEBCHAT_URL;
const screenshot = process.env.WEBCHAT_SCREENSHOT;
const message = process.env.WEBCHAT_MESSAGE || "hello";
const expectReply = process.env.WEBCHAT_EXPECT_REPLY;
const toolMessage = process.env.WEBCHAT_TOOL_MESSAGE;
const abortMessage = process.env.WEBCHAT_ABORT_MESSAGE;
const approvalMessage = process.env.WEBCHAT_APPROVAL_MESSAGE;
const expectApproval = process.env.WEBCHAT_EXPECT_APPROVAL || "";
const expectFullCall = process.env.WEBCHAT_EXPECT_FULL_CALL || "";
const expectShortened = process.env.WEBCHAT_EXPECT_SHORTENED === "1";
// What must never reach the page raw from a model: C0/C1 controls (other than the full view's
// line breaks), bidi controls, zero-width and other invisible characters.
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;
const qrAccount = process.env.WEBCHAT_QR_ACCOUNT;
const timeout = Number(process.env.WEBCHAT_TIMEOUT_MS || 30000);

function fail(why) {
  throw new Error(why);
}

async function send(page, text) {
  await page.getByLabel("Message to chitin").fill(text);
  await page.getByLabel("Message to chitin").press("Enter");
  await page.locator(".msg.user .text", { hasText: text }).last().waitFor({ timeout });
}

// Waits for the assistant message of the newest run to leave "running" and returns it.
async function finishedRun(page, count) {
  const run = page.locator(".msg.assistant").nth(count - 1);
  await run.waitFor({ timeout });
  await page.waitForFunction(
    (n) => {
      const runs = document.querySelectorAll(".msg.assistant");
      return runs.length >= n && runs[n - 1].dataset.state !== "running";
    },
    count,
    { timeout },
  );
  return run;
}

async function main() {
  if (!url || !url.includes("#token=")) fail("WEBCHAT_URL must be set and carry #token=…");
  const userDataDir = await mkdtemp(path.join(tmpdir(), "chitin-webchat-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(msg.text())) {
      problems.push(`CSP: ${msg.text()}`);
    }
  });

  try {
    await page.goto(url, { timeout });
    await page.locator('#status[data-state="connected"]').waitFor({ timeout });
    if (page.url().includes("token=")) fail(`the token is still in the address bar: ${page.url()}`);
    const stored = await page.evaluate(() => sessionStorage.getItem("chitin.gatewayToken"));
    if (!stored) fail("the token was not kept in sessionStorage");

    let runs = 0;
    await send(page, message);
    const first = await finishedRun(page, ++runs);
    const state = await first.getAttribute("data-state");
    const reply = (await first.locator(".text").textContent()) || "";
    if (state !== "done") fail(`first run ended "${state}": ${await first.textContent()}`);
    if (!reply.trim()) fail("the first reply is empty");
    if (expectReply && !reply.includes(expectReply)) {
      fail(`the reply ${JSON.stringify(reply)} lacks ${JSON.stringify(expectReply)}`);
    }
    console.log(`reply: ${reply}`);

    if (toolMessage) {
      await send(page, toolMessage);
      const run = await finishedRun(page, ++runs);
      const tool = run.locator(".tool").first();
      await tool.waitFor({ timeout });
      const status = await tool.getAttribute("data-status");
      const name = await tool.locator(".tool-name").textContent();
      if (status !== "ok") fail(`tool line "${await tool.textContent()}" has status ${status}`);
      if ((await run.getAttribute("data-state")) !== "done") fail("the tool run did not finish ok");
      console.log(`tool: ${name} ${await tool.locator(".tool-args").textContent()} -> ${status}`);
    }

    if (approvalMessage) {
      await send(page, approvalMessage);
      const card = page.locator(".approval").last();
      await card.waitFor({ timeout });
      const shown = (await card.locator(".approval-call").textContent()) || "";
      if (!shown.includes(expectApproval)) {
        fail(`the confirmation card shows ${JSON.stringify(shown)}, not ${expectApproval}`);
      }
      if (RAW.test(shown) || shown.includes("\n")) {
        fail(`the card's line carries a raw control or invisible character: ${JSON.stringify(shown)}`);
      }
      const marker = / \[\+\d+ bytes not shown; chitin approvals show [0-9a-f]+\]$/;
      if (expectShortened && !marker.test(shown)) {
        fail(`the card's line is not marked as shortened: ${JSON.stringify(shown)}`);
      }
      // The whole call: closed at first, one click opens it.
      const full = card.locator(".approval-full-call");
      if (await full.isVisible()) fail("the full call is open before anyone asked for it");
      await card.locator(".approval-full summary").click();
      await full.waitFor({ state: "visible", timeout });
      const fullText = (await full.textContent()) || "";
      if (!fullText.includes(expectFullCall)) {
        fail(`the full call lacks ${JSON.stringify(expectFullCall)}: ${JSON.stringify(fullText)}`);
      }
      if (RAW.test(fullText)) {
        fail(`the full call carries a raw control or invisible character: ${JSON.stringify(fullText)}`);
      }
      await card.getByRole("button", { name: "Approve" }).click();
      const run = await finishedRun(page, ++runs);
      const done = card.locator(".approval-done");
      await done.waitFor({ timeout });
      if ((await done.getAttribute("data-decision")) !== "approved") {
        fail(`the card says "${await done.textContent()}"`);
      }
      const statuses = await run.locator(".tool").evaluateAll((lines) =>
        lines.map((l) => l.dataset.status),
      );
      if (!statuses.length || statuses.some((s) => s !== "ok")) {
        fail(`after approval the tools ended ${JSON.stringify(statuses)}`);
      }
      console.log(`approval: "${shown}" (full call ${fullText.length} characters) approved, ` +
        `tools ${statuses.join(", ")}`);
    }

    if (abortMessage) {
      await send(page, abortMessage);
      const stop = page.getByRole("button", { name: "Stop" });
      await stop.waitFor({ state: "visible", timeout });
      await stop.click();
      const run = await finishedRun(page, ++runs);
      const ended = await run.getAttribute("data-state");
      if (ended !== "aborted") fail(`the stopped run ended "${ended}"`);
      await stop.waitFor({ state: "hidden", timeout });
      console.log("abort: the run was stopped");
    }

    if (qrAccount) {
      await page.getByRole("button", { name: "Channels" }).click();
      const entry = page.locator(".channel-list li", { hasText: `${qrAccount}: login_required` });
      await entry.waitFor({ timeout });
      await entry.getByRole("button", { name: "Link" }).click();
      await page.waitForFunction(() => document.getElementById("login-qr").width > 0, null, {
        timeout,
      });
      // Each module is 6 px with a 4-module quiet zone; sample the middle of a few modules.
      const samples = await page.evaluate(() => {
        const canvas = document.getElementById("login-qr");
        const g = canvas.getContext("2d");
        const at = (mx, my) => g.getImageData((mx + 4) * 6 + 3, (my + 4) * 6 + 3, 1, 1).data[0];
        return {
          side: canvas.width,
          quiet: g.getImageData(3, 3, 1, 1).data[0],
          m00: at(0, 0), m10: at(1, 0), m11: at(1, 1), m2019: at(20, 19), m2020: at(20, 20),
        };
      });
      const dark = (v) => v < 64;
      const light = (v) => v > 192;
      if (samples.side !== (21 + 8) * 6) fail(`the QR canvas is ${samples.side} px wide`);
      if (!light(samples.quiet) || !dark(samples.m00) || !light(samples.m10) ||
          !dark(samples.m11) || !light(samples.m2019) || !dark(samples.m2020)) {
        fail(`the QR code is not painted as its rows say: ${JSON.stringify(samples)}`);
      }
      const shown = await page.locator("#login-text").textContent();
      if (!/Scan with WhatsApp|the fake has no second code/.test(shown)) {
        fail(`the login text says "${shown}"`);
      }
      console.log("channels: the QR code is painted from the gateway's rows");

      // Linking by phone number instead: something that is no number is refused on the page;
      // the number typed reaches the gateway (the fake answers a code only for it), and the
      // 8-character code replaces the QR code, with what to do on the phone.
      const phone = entry.getByRole("textbox", { name: /Phone number of/ });
      const ask = entry.getByRole("button", { name: "Get pairing code" });
      await phone.fill("my phone");
      await ask.click();
      await page.locator("#login-text", { hasText: "international form" }).waitFor({ timeout });
      await phone.fill("+1 555 123 4567");
      await ask.click();
      await page.locator("#login-code", { hasText: "K7QW-2M9X" }).waitFor({ timeout });
      const instructions = await page.locator("#login-text").textContent();
      if (!/Linked devices.*Link with phone number/.test(instructions)) {
        fail(`the pairing code comes without the steps on the phone: "${instructions}"`);
      }
      if ((await page.evaluate(() => document.getElementById("login-qr").width)) !== 0) {
        fail("the QR code is still shown next to the pairing code");
      }
      // The fake refuses to follow the login: the code stays readable, the note says why.
      await page.locator("#login-note", { hasText: "no second code" }).waitFor({ timeout });
      if ((await page.locator("#login-code").textContent()) !== "K7QW-2M9X") {
        fail("the pairing code went away when following the login failed");
      }
      console.log("channels: a phone number gets its pairing code and the steps on the phone");
    }

    if (problems.length) fail(problems.join("\n"));
    console.log("webchat: ok");
  } finally {
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`webchat: FAIL ${error.message}`);
    process.exit(1);
  },
);
