#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The two model APIs on the wire, for fake_model.py: request validation as the real services
do it, and replies (streamed or whole) with the real field names, events and terminators.

Runs in: tests only (never shipped). Written from the public API references, independently of
chitin's client code.
"""

import json
import re
import time
import uuid

DEFAULT_CHUNK_SIZE = 8


class BadRequest(Exception):
    """The client sent something the real API rejects with 400."""


def pieces(text, size):
    size = max(1, int(size))
    return [text[i:i + size] for i in range(0, len(text), size)] or []


def estimate_tokens(value):
    return max(1, len(json.dumps(value)) // 4)

# --------------------------------------------------------------------------------------------
# Validation, as the real APIs do it


def validate_openai(body):
    if not isinstance(body, dict):
        raise BadRequest("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must contain at least one message")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise BadRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    pending = []  # tool_call ids of the last assistant turn not yet answered
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise BadRequest("Invalid value for 'messages[%d].role'" % i)
        if role != "tool" and pending:
            raise BadRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                "response messages: " + ", ".join(pending))
        if role == "assistant":
            calls = m.get("tool_calls") or []
            if not isinstance(calls, list):
                raise BadRequest("Invalid type for 'messages[%d].tool_calls'" % i)
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call.get("id"), str) or not isinstance(fn, dict):
                    raise BadRequest("Missing required parameter: 'messages[%d].tool_calls[%d]'"
                                     % (i, j))
                if not isinstance(fn.get("arguments"), str):
                    raise BadRequest("Invalid type for 'messages[%d].tool_calls[%d].function."
                                     "arguments': expected a string" % (i, j))
                pending.append(call["id"])
            if m.get("content") is None and not calls:
                raise BadRequest("Invalid value for 'messages[%d].content'" % i)
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in pending:
                raise BadRequest("Invalid parameter: messages with role 'tool' must be a response "
                                 "to a preceeding message with 'tool_calls'.")
            pending.remove(call_id)
        elif not isinstance(m.get("content"), (str, list)):
            raise BadRequest("Invalid type for 'messages[%d].content'" % i)
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not isinstance(tool.get("function"), dict) \
                or not tool["function"].get("name"):
            raise BadRequest("Missing required parameter: 'tools[%d].function'" % i)


def validate_anthropic(body, headers):
    if not headers.get("anthropic-version"):
        raise BadRequest("anthropic-version: header is required")
    if not isinstance(body, dict):
        raise BadRequest("Could not parse the request body as JSON")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise BadRequest("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    previous_tool_uses = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise BadRequest("messages.%d.role: Input should be 'user' or 'assistant'" % i)
        if i == 0 and role != "user":
            raise BadRequest("messages: first message must use the \"user\" role")
        if i > 0 and messages[i - 1].get("role") == role:
            raise BadRequest("messages: roles must alternate between \"user\" and \"assistant\", "
                             "but found multiple \"%s\" roles in a row" % role)
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise BadRequest("messages.%d: all messages must have non-empty content" % i)
        tool_uses = set()
        answered = set()
        for j, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    raise BadRequest("messages.%d.content.%d.text: text content blocks must be "
                                     "non-empty" % (i, j))
            elif kind == "tool_use" and role == "assistant":
                if not isinstance(block.get("input"), dict):
                    raise BadRequest("messages.%d.content.%d.tool_use.input: Input should be a "
                                     "valid dictionary" % (i, j))
                if not re.fullmatch(r"[a-zA-Z0-9_-]+", str(block.get("id", ""))):
                    raise BadRequest("messages.%d.content.%d.tool_use.id: String should match "
                                     "pattern '^[a-zA-Z0-9_-]+$'" % (i, j))
                tool_uses.add(block["id"])
            elif kind == "tool_result" and role == "user":
                if block.get("tool_use_id") not in previous_tool_uses:
                    raise BadRequest(
                        "messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` "
                        "blocks: %s. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                        % (i, j, block.get("tool_use_id")))
                answered.add(block["tool_use_id"])
            elif kind not in ("image", "document", "thinking", "redacted_thinking"):
                raise BadRequest("messages.%d.content.%d: unexpected block type %r" % (i, j, kind))
        if role == "user" and previous_tool_uses - answered:
            raise BadRequest("messages.%d: `tool_use` ids were found without `tool_result` blocks "
                             "immediately after: %s. Each `tool_use` block must have a "
                             "corresponding `tool_result` block in the next message."
                             % (i - 1, ", ".join(sorted(previous_tool_uses - answered))))
        previous_tool_uses = tool_uses if role == "assistant" else set()
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not tool.get("name") or \
                not isinstance(tool.get("input_schema"), dict):
            raise BadRequest("tools.%d: name and input_schema are required" % i)

# --------------------------------------------------------------------------------------------
# Replies


class OpenAiReply:
    def __init__(self, handler, body, step, reply):
        self.h, self.body, self.step, self.reply = handler, body, step, reply
        self.id = "chatcmpl-" + uuid.uuid4().hex[:20]
        self.created = int(time.time())
        self.model = body["model"]
        self.calls = [dict(c, id="call_" + uuid.uuid4().hex[:24]) for c in reply["calls"]]
        self.text = reply["text"] + reply["text_after"]
        self.finish = step.get("finish_reason") or ("tool_calls" if self.calls else "stop")
        self.usage = {"prompt_tokens": estimate_tokens(body["messages"]),
                      "completion_tokens": max(1, len(self.text) // 4 + 4 * len(self.calls))}
        self.usage["total_tokens"] = self.usage["prompt_tokens"] + self.usage["completion_tokens"]

    def chunk(self, delta, finish=None):
        payload = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                   "model": self.model, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish}]}
        if self.include_usage:
            payload["usage"] = None
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    def send(self):
        if not self.body.get("stream"):
            message = {"role": "assistant", "content": self.text or None, "refusal": None}
            if self.calls:
                message["tool_calls"] = [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in self.calls]
            self.h.send_json(200, {"id": self.id, "object": "chat.completion",
                                   "created": self.created, "model": self.model,
                                   "choices": [{"index": 0, "message": message, "logprobs": None,
                                                "finish_reason": self.finish}],
                                   "usage": self.usage},
                             {"x-request-id": "req_" + uuid.uuid4().hex[:12]})
            return
        self.include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        size = self.step.get("chunk_size", DEFAULT_CHUNK_SIZE)
        events = [self.chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [self.chunk({"content": p}) for p in pieces(self.reply["text"], size)]
        fragments = []
        for index, call in enumerate(self.calls):
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}
            fragments.append([head] + [{"index": index, "function": {"arguments": p}}
                                       for p in pieces(call["arguments"], size)])
        if self.step.get("interleave_tool_calls"):
            while any(fragments):  # round-robin, as parallel calls really arrive
                for queue in fragments:
                    if queue:
                        events.append(self.chunk({"tool_calls": [queue.pop(0)]}))
        else:
            for queue in fragments:
                events += [self.chunk({"tool_calls": [f]}) for f in queue]
        events += [self.chunk({"content": p}) for p in pieces(self.reply["text_after"], size)]
        stream_send(self.h, self.step, self.reply, events, "x-request-id",
                    tail=[self.chunk({}, self.finish)] +
                    ([b"data: " + json.dumps({
                        "id": self.id, "object": "chat.completion.chunk",
                        "created": self.created, "model": self.model, "choices": [],
                        "usage": self.usage}).encode() + b"\n\n"] if self.include_usage else []) +
                    [b"data: [DONE]\n\n"],
                    malformed=b'data: {"id": "' + self.id.encode() +
                    b'", "choices": [{"index": 0, "delta": {"content": "oops\n\n',
                    stream_error=lambda e: b"data: " + json.dumps({"error": {
                        "message": e.get("message", "scripted stream error"),
                        "type": e.get("type", "server_error"), "param": None,
                        "code": None}}).encode() + b"\n\n")


class AnthropicReply:
    def __init__(self, handler, body, step, reply):
        self.h, self.body, self.step, self.reply = handler, body, step, reply
        self.id = "msg_" + uuid.uuid4().hex[:24]
        self.calls = [dict(c, id="toolu_" + uuid.uuid4().hex[:24]) for c in reply["calls"]]
        self.stop = step.get("finish_reason") or ("tool_use" if self.calls else "end_turn")
        self.input_tokens = estimate_tokens(body["messages"])
        self.output_tokens = max(1, len(reply["text"] + reply["text_after"]) // 4 +
                                 4 * len(self.calls))

    @staticmethod
    def event(name, payload):
        return b"event: " + name.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"

    def usage(self, output):
        return {"input_tokens": self.input_tokens, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output}

    def send(self):
        blocks = []
        if self.reply["text"]:
            blocks.append({"type": "text", "text": self.reply["text"]})
        for c in self.calls:
            try:
                parsed = json.loads(c["arguments"] or "{}")
            except ValueError:
                parsed = None  # a scripted broken input: streamed as is, like a confused model
            blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"],
                           "input": parsed if isinstance(parsed, dict) else {},
                           "raw": c["arguments"] if parsed != {} else ""})
        if self.reply["text_after"]:
            blocks.append({"type": "text", "text": self.reply["text_after"]})
        if not self.body.get("stream"):
            content = [{k: v for k, v in b.items() if k != "raw"} for b in blocks]
            self.h.send_json(200, {"id": self.id, "type": "message", "role": "assistant",
                                   "model": self.body["model"], "content": content,
                                   "stop_reason": self.stop, "stop_sequence": None,
                                   "usage": self.usage(self.output_tokens)},
                             {"request-id": "req_" + uuid.uuid4().hex[:12]})
            return
        size = self.step.get("chunk_size", DEFAULT_CHUNK_SIZE)
        events = [self.event("message_start", {
            "type": "message_start",
            "message": {"id": self.id, "type": "message", "role": "assistant",
                        "model": self.body["model"], "content": [], "stop_reason": None,
                        "stop_sequence": None, "usage": self.usage(1)}})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(self.event("content_block_start", {
                    "type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}}))
                if index == 0:
                    events.append(self.event("ping", {"type": "ping"}))
                events += [self.event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": p}})
                    for p in pieces(block["text"], size)]
            else:
                events.append(self.event("content_block_start", {
                    "type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"],
                                      "name": block["name"], "input": {}}}))
                # The real API opens every tool input with an empty partial_json.
                events += [self.event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": p}})
                    for p in [""] + pieces(block["raw"], size)]
            events.append(self.event("content_block_stop",
                                     {"type": "content_block_stop", "index": index}))
        stream_send(self.h, self.step, self.reply, events, "request-id",
                    tail=[self.event("message_delta", {
                        "type": "message_delta",
                        "delta": {"stop_reason": self.stop, "stop_sequence": None},
                        "usage": {"output_tokens": self.output_tokens}}),
                          self.event("message_stop", {"type": "message_stop"})],
                    malformed=b'event: content_block_delta\ndata: {"type": "content_block_delta'
                              b'", "index": 0, "delta": {"type": "text_del\n\n',
                    stream_error=lambda e: self.event("error", {"type": "error", "error": {
                        "type": e.get("type", "overloaded_error"),
                        "message": e.get("message", "Overloaded")}}))


def stream_send(h, step, reply, events, request_id_header, tail, malformed, stream_error):
    """Sends body events then tail events, applying the step's faults."""
    h.start_stream(request_id_header)
    delay = step.get("chunk_delay_ms", 0) / 1000.0

    def send(data):
        h.write_chunk(data, step)
        if delay:
            time.sleep(delay)

    if step.get("truncate"):
        # Half the body (at least its first event), then the connection drops.
        for data in events[:max(1, len(events) // 2)]:
            send(data)
        h.cut_connection()
        return
    if step.get("wait_for_abort"):
        for data in events[:3]:
            send(data)
        h.hold_open(reply["scenario"], reply["step_index"])
        return
    for i, data in enumerate(events):
        send(data)
        if i == 1 and step.get("malformed"):
            send(malformed)
        if i == 1 and step.get("stream_error"):
            send(stream_error(step["stream_error"]))
            h.end_chunks()
            return
    if step.get("malformed") and len(events) < 2:
        send(malformed)
    for data in tail:
        send(data)
    h.end_chunks()
