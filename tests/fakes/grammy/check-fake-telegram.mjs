// SPDX-License-Identifier: Apache-2.0
// Drives tests/fakes/fake_telegram.py with grammY, an independent Bot API client, to show the
// fake answers the way api.telegram.org does: long polling and offsets, sendMessage with HTML
// (valid, and refused with "can't parse entities"), entities in UTF-16 offsets, replies, chat
// actions, reactions, getFile + download, multipart uploads, 429 with retry_after, 409 while a
// webhook is set, 401 for a bad token.
// Runs in: tests only. Usage: node check-fake-telegram.mjs API_ROOT TOKEN

import assert from "node:assert/strict";
import { Bot, GrammyError, InputFile } from "grammy";

const [apiRoot, token] = process.argv.slice(2);
const control = async (name, body) => {
  const response = await fetch(`${apiRoot}/control/${name}`, {
    method: body === undefined ? "GET" : "POST",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
};
const step = (name) => console.log(`ok - ${name}`);

const owner = { id: 1001, is_bot: false, first_name: "Owner" };
const dm = { id: 1001, type: "private", first_name: "Owner" };
const group = { id: -2001, type: "supergroup", title: "Team" };

const bot = new Bot(token, { client: { apiRoot } });
await bot.init();
assert.equal(bot.botInfo.username, "chitin_test_bot");
step("getMe through bot.init()");

const fileBytes = Buffer.from("hello from a user file\n");
const file = await control("file", {
  content_b64: fileBytes.toString("base64"),
  file_path: "documents/notes.txt",
});
const mentionText = "\u{1F600} @chitin_test_bot look";
await control("message", { chat: dm, from: owner, text: "hello" });
await control("message", {
  chat: group, from: owner, text: mentionText,
  entities: [{ type: "mention", offset: 3, length: 16 }],
});
await control("message", {
  chat: dm, from: owner, caption: "my notes",
  document: { file_id: file.file_id, file_unique_id: file.file_unique_id, file_name: "notes.txt",
              mime_type: "text/plain", file_size: fileBytes.length },
});

const seen = [];
const failures = [];
bot.on("message", async (ctx) => {
  try {
    seen.push(ctx.msg.message_id);
    if (ctx.msg.text === "hello") {
      const sent = await ctx.reply("\u{1F600} <b>bold</b> &amp; <i>it</i>", {
        parse_mode: "HTML", reply_parameters: { message_id: ctx.msg.message_id },
      });
      // UTF-16 offsets, as JavaScript strings count.
      const bold = sent.entities.find((e) => e.type === "bold");
      assert.equal(sent.text.substr(bold.offset, bold.length), "bold");
      assert.equal(sent.reply_to_message.message_id, ctx.msg.message_id);
      await assert.rejects(ctx.reply("<b>unclosed", { parse_mode: "HTML" }), (e) =>
        e instanceof GrammyError && e.error_code === 400 &&
        e.description.startsWith("Bad Request: can't parse entities"));
      await ctx.replyWithChatAction("typing");
      await ctx.react("\u{1F440}");
      await assert.rejects(ctx.react("\u{1F4A9}\u{1F4A9}"), (e) => e.error_code === 400);
      await control("fail", { method: "sendMessage", status: 429, retry_after: 1 });
      await assert.rejects(ctx.reply("rate limited"), (e) =>
        e instanceof GrammyError && e.error_code === 429 && e.parameters.retry_after === 1);
      step("sendMessage HTML, reply, entity offsets, parse error, typing, reaction, 429");
    } else if (ctx.msg.text === mentionText) {
      assert.deepEqual(ctx.entities("mention").map((e) => e.text), ["@chitin_test_bot"]);
      assert.equal(ctx.chat.type, "supergroup");
      step("group message with a mention entity");
    } else if (ctx.msg.document) {
      const info = await ctx.getFile();
      assert.equal(info.file_path, "documents/notes.txt");
      const download = await fetch(`${apiRoot}/file/bot${token}/${info.file_path}`);
      assert.deepEqual(Buffer.from(await download.arrayBuffer()), fileBytes);
      const doc = await ctx.replyWithDocument(new InputFile(Buffer.from("report"), "report.txt"));
      assert.equal(doc.document.file_name, "report.txt");
      const photo = await ctx.replyWithPhoto(new InputFile(Buffer.from("\x89PNG"), "p.png"));
      assert.ok(photo.photo.length > 0);
      step("getFile, download, sendDocument and sendPhoto (multipart)");
    }
  } catch (e) {
    failures.push(e);
  }
  if (seen.length === 3) setTimeout(() => { stopped = bot.stop(); }, 0);
});
let stopped = null;
await bot.start({ timeout: 1, allowed_updates: ["message"], drop_pending_updates: false });
// start() returns once the polling loop ends, which can be before stop()'s confirming
// getUpdates (offset past the last update) has reached the fake: wait for that too.
await stopped;
if (failures.length) throw failures[0];
assert.equal(seen.length, 3);

// bot.stop() confirmed the updates it handled: nothing is pending any more.
const state = await control("state");
assert.deepEqual(state.pending, []);
assert.deepEqual(state.allowed_updates, ["message"]);
const sent = (await control("sent")).sent;
assert.deepEqual(sent.map((s) => s.method), [
  "sendMessage", "sendChatAction", "setMessageReaction", "sendDocument", "sendPhoto"]);
assert.equal(sent[0].text, "\u{1F600} bold & it");
step("offsets confirmed on stop; the fake recorded what was sent");

await control("webhook", { url: "https://example.invalid/hook" });
await assert.rejects(bot.api.getUpdates({ timeout: 0 }), (e) =>
  e.error_code === 409 && e.description.includes("webhook is active"));
await bot.api.deleteWebhook();
assert.deepEqual(await bot.api.getUpdates({ timeout: 0 }), []);
step("409 while a webhook is set, cleared by deleteWebhook");

const wrong = new Bot("999:wrong", { client: { apiRoot } });
await assert.rejects(wrong.init(), (e) => e instanceof GrammyError && e.error_code === 401);
step("401 for a token the server does not know");
console.log("all checks passed");
