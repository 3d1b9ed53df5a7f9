# SPDX-License-Identifier: Apache-2.0
"""The Bot API methods of tests/fakes/fake_telegram.py: what each checks and answers, with the
real server's shapes and wording (https://core.telegram.org/bots/api).

Runs in: tests only. Every method runs under the Bot's lock (getUpdates waits on its condition).
"""

import hashlib
import json
import time

from fake_telegram_html import ParseError, parse_html, utf16_len

MAX_DOWNLOAD = 20 * 1024 * 1024   # getFile refuses bigger files ("file is too big")
MAX_TEXT = 4096                   # sendMessage, after entity parsing, in UTF-16 units
MAX_CAPTION = 1024
CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                "upload_voice", "upload_document", "choose_sticker", "find_location",
                "record_video_note", "upload_video_note"}
# The emoji a bot may react with (ReactionTypeEmoji), a subset of the documented list.
REACTIONS = set("👍👎❤🔥🥰👏😁🤔🤯😱🤬😢🎉🤩🤮💩🙏👌🕊🤡🥱🥴😍🐳🌚🌭💯🤣⚡🍌🏆💔🤨😐🍓🍾💋🖕😈😴😭🤓👻"
                "👀🎃🙈😇😨🤝✍🤗🫡🎅🎄☃💅🤪🗿🆒💘🙉🦄😘💊🙊😎👾🤷😡") | {"❤\u200d🔥", "👨\u200d💻"}
CONFLICT_POLL = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
CONFLICT_HOOK = ("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook"
                 " to delete the webhook first")


class ApiError(Exception):
    def __init__(self, code, description, parameters=None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def bad(description):
    return ApiError(400, "Bad Request: " + description)


def as_int(params, name, required=True):
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise bad("%s is empty" % name if name != "chat_id" else "chat_id is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad("invalid %s specified" % name)


def as_json(params, name):
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad("can't parse %s JSON object" % name)
    return value


class Api:
    """The Bot API methods. Each takes the request's parameters and returns `result`."""

    def __init__(self, bot):
        self.bot = bot

    def chat(self, params):
        chat_id = as_int(params, "chat_id")
        if chat_id in self.bot.migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           {"migrate_to_chat_id": self.bot.migrated[chat_id]})
        chat = self.bot.chats.get(chat_id)
        if chat is None:
            raise bad("chat not found")
        return chat

    def text_and_entities(self, params, text_key, limit):
        text = params.get(text_key)
        if text is None:
            text = ""
        mode = params.get("parse_mode") or ""
        entities = []
        if mode.lower() == "html":
            try:
                text, entities = parse_html(text)
            except ParseError as e:
                raise bad("can't parse entities: " + str(e))
        elif mode:
            if mode not in ("Markdown", "MarkdownV2"):
                raise bad("unsupported parse_mode")
        if utf16_len(text.strip()) == 0 and text_key == "text":
            raise bad("message text is empty")
        if utf16_len(text) > limit:
            raise bad("message is too long" if text_key == "text" else "message caption is too long")
        return text, entities

    def post(self, chat, params, record, extra):
        """Posts a bot message into `chat`; returns the Message."""
        bot = self.bot
        reply = as_json(params, "reply_parameters")
        reply_to = None
        if reply is not None:
            if not isinstance(reply, dict) or "message_id" not in reply:
                raise bad("can't parse reply parameters JSON object")
            reply_to = bot.messages.get((chat["id"], int(reply["message_id"])))
            if reply_to is None and not reply.get("allow_sending_without_reply"):
                raise bad("message to be replied not found")
        message = {"message_id": bot.message_id_for(chat["id"]), "from": bot.user,
                   "chat": chat, "date": int(time.time())}
        thread = as_int(params, "message_thread_id", required=False)
        if thread is not None:
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(extra)
        bot.messages[(chat["id"], message["message_id"])] = message
        record.update({"chat_id": chat["id"], "message_id": message["message_id"],
                       "reply_to_message_id": reply_to["message_id"] if reply_to else None,
                       "message_thread_id": thread})
        bot.sent.append(record)
        return message

    def getMe(self, params, files):
        return self.bot.user

    def logOut(self, params, files):
        return True

    def deleteWebhook(self, params, files):
        with self.bot.cond:
            self.bot.webhook = ""
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self.bot.updates.clear()
        return True

    def setWebhook(self, params, files):
        with self.bot.cond:
            self.bot.webhook = params.get("url", "")
            self.bot.cond.notify_all()
        return True

    def getWebhookInfo(self, params, files):
        return {"url": self.bot.webhook, "has_custom_certificate": False,
                "pending_update_count": len(self.bot.updates)}

    def getUpdates(self, params, files):
        bot = self.bot
        offset = as_int(params, "offset", required=False) or 0
        limit = min(max(as_int(params, "limit", required=False) or 100, 1), 100)
        timeout = max(as_int(params, "timeout", required=False) or 0, 0)
        allowed = as_json(params, "allowed_updates")
        with bot.cond:
            bot.get_updates_calls += 1
            bot.last_offset = offset
            if allowed is not None:
                bot.allowed = allowed or None  # [] = all types except a few (default)
            if bot.webhook:
                raise ApiError(409, CONFLICT_HOOK)
            # A newer getUpdates ends the one still waiting, with 409.
            bot.poll_generation += 1
            mine = bot.poll_generation
            bot.cond.notify_all()
            if offset > 0:
                bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
            deadline = time.monotonic() + timeout
            while True:
                if bot.poll_generation != mine:
                    raise ApiError(409, CONFLICT_POLL)
                if bot.revoked:
                    raise ApiError(401, "Unauthorized")
                ready = [u for u in bot.updates
                         if bot.allowed is None or any(k in u for k in bot.allowed)]
                if offset < 0:
                    ready = ready[offset:]
                ready = ready[:limit]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return ready
                bot.cond.wait(left)

    def sendMessage(self, params, files):
        chat = self.chat(params)
        text, entities = self.text_and_entities(params, "text", MAX_TEXT)
        extra = {"text": text}
        if entities:
            extra["entities"] = entities
        record = {"method": "sendMessage", "text": text, "entities": entities,
                  "raw": params.get("text"), "parse_mode": params.get("parse_mode")}
        return self.post(chat, params, record, extra)

    def sendChatAction(self, params, files):
        chat = self.chat(params)
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        self.bot.sent.append({"method": "sendChatAction", "chat_id": chat["id"], "action": action})
        return True

    def setMessageReaction(self, params, files):
        chat = self.chat(params)
        message_id = as_int(params, "message_id")
        if (chat["id"], message_id) not in self.bot.messages:
            raise bad("message to react not found")
        reaction = as_json(params, "reaction") or []
        if not isinstance(reaction, list) or len(reaction) > 1:
            raise bad("REACTIONS_TOO_MANY")
        for r in reaction:
            if not isinstance(r, dict) or r.get("type") != "emoji" or r.get("emoji") not in REACTIONS:
                raise bad("REACTION_INVALID")
        self.bot.sent.append({"method": "setMessageReaction", "chat_id": chat["id"],
                              "message_id": message_id,
                              "reaction": [r["emoji"] for r in reaction]})
        return True

    def getFile(self, params, files):
        entry = self.bot.files.get(params.get("file_id", ""))
        if entry is None:
            raise bad("invalid file_id")
        if entry["size"] > MAX_DOWNLOAD:
            raise bad("file is too big")
        return {"file_id": params["file_id"], "file_unique_id": entry["unique"],
                "file_size": entry["size"], "file_path": entry["path"]}

    def send_file(self, params, files, method, field):
        chat = self.chat(params)
        upload = files.get(field)
        reference = params.get(field) or ""
        if upload is None and reference.startswith("attach://"):
            # The file travels in another part, named after "attach://".
            upload = files.get(reference[len("attach://"):])
        if upload is None:
            if params.get(field) in self.bot.files:
                entry = self.bot.files[params[field]]
                upload = ("file", "application/octet-stream", entry["data"])
            else:
                raise bad("there is no %s in the request" % field)
        name, ctype, data = upload
        caption, entities = self.text_and_entities(params, "caption", MAX_CAPTION)
        file_id = "F%d" % (len(self.bot.files) + 1)
        unique = hashlib.sha256(data).hexdigest()[:16]
        self.bot.files[file_id] = {"path": "%ss/%s" % (field, name), "data": data,
                                   "size": len(data), "unique": unique}
        if field == "photo":
            extra = {"photo": [{"file_id": file_id, "file_unique_id": unique, "width": 90,
                                "height": 90, "file_size": len(data)}]}
        else:
            extra = {"document": {"file_id": file_id, "file_unique_id": unique, "file_name": name,
                                  "mime_type": ctype, "file_size": len(data)}}
        if caption:
            extra["caption"] = caption
        record = {"method": method, "file_name": name, "content_type": ctype, "size": len(data),
                  "sha256": hashlib.sha256(data).hexdigest(), "caption": caption}
        return self.post(chat, params, record, extra)

    def sendPhoto(self, params, files):
        return self.send_file(params, files, "sendPhoto", "photo")

    def sendDocument(self, params, files):
        return self.send_file(params, files, "sendDocument", "document")
