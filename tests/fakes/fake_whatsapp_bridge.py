#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake of chitin's WhatsApp bridge (workers/channel/whatsapp/bridge/bridge.mjs), for the C++
adapter's tests: the same JSON-lines protocol, written from the protocol comment at the top of
bridge.mjs, with no WhatsApp behind it.

Runs in: tests only. Started by the adapter as its bridge:
  fake_whatsapp_bridge.py CONTROL_DIR --state S --media M --egress E
CONTROL_DIR is the test's window into it:
  commands.jsonl  every command received, one JSON line each, after a {"type":"_started",
                  "argv":[...]} line per start (so a test counts restarts); outbound media
                  appear with their bytes as "data_b64" (the file is removed, as the bridge does)
  inject/NNN.json events to emit, in name order, polled every 20 ms; {"type":"_exit","code":N}
                  makes the bridge exit; a "message" whose media has "data_b64" gets it written
                  into the media directory first, like a downloaded file
  linked          present = paired: hello answers connecting + open; absent = loginRequired
  fail            present = every send/typing/react answers ok:false with its content as error
Login: login.start answers with a QR ("QR-DATA-1") or, given a phone, pairing code "ABCD-2345",
then creates `linked` and reports the connection open.
"""

import base64
import json
import os
import sys
import threading
import time

control = sys.argv[1]
args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
media_dir = args["--media"]
ME = "15550000000:7@s.whatsapp.net"
lock = threading.Lock()


def emit(event):
    with lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def record(command):
    with open(os.path.join(control, "commands.jsonl"), "a") as f:
        f.write(json.dumps(command) + "\n")


def injector():
    inject = os.path.join(control, "inject")
    os.makedirs(inject, exist_ok=True)
    while True:
        for name in sorted(os.listdir(inject)):
            path = os.path.join(inject, name)
            if not name.endswith(".json"):
                continue
            with open(path) as f:
                event = json.load(f)
            os.remove(path)
            if event.get("type") == "_exit":
                os._exit(event.get("code", 1))
            media = event.get("media")
            if media and "data_b64" in media:
                file = os.path.join(media_dir, "in-" + name[:-5])
                with open(file, "wb") as f:
                    f.write(base64.b64decode(media.pop("data_b64")))
                media["path"] = file
            emit(event)
        time.sleep(0.02)


def answer(command, **extra):
    if "id" in command:
        emit(dict({"type": "result", "id": command["id"], "ok": True}, **extra))


def fail(command, error):
    emit({"type": "result", "id": command.get("id"), "ok": False, "error": error})


def main():
    record({"type": "_started", "argv": sys.argv[2:]})
    threading.Thread(target=injector, daemon=True).start()
    linked = os.path.join(control, "linked")
    sent = 0
    for line in sys.stdin:
        command = json.loads(line)
        media = command.get("media")
        if media and os.path.isfile(media.get("path", "")):
            with open(media["path"], "rb") as f:
                media["data_b64"] = base64.b64encode(f.read()).decode()
            os.remove(media["path"])
        record(command)
        kind = command.get("type")
        if kind == "hello":
            emit({"type": "hello", "version": 1, "baileys": "fake"})
            if os.path.exists(linked):
                emit({"type": "connection", "state": "connecting"})
                emit({"type": "connection", "state": "open", "me": ME})
            else:
                emit({"type": "connection", "state": "loginRequired"})
        elif kind == "login.start":
            answer(command)
            emit({"type": "connection", "state": "connecting"})
            if command.get("phone"):
                emit({"type": "pairingCode", "code": "ABCD-2345"})
            else:
                emit({"type": "qr", "data": "QR-DATA-1"})
            open(linked, "w").close()
            emit({"type": "connection", "state": "open", "me": ME})
        elif kind in ("send", "typing", "react"):
            if os.path.exists(os.path.join(control, "fail")):
                fail(command, "scripted failure of " + kind)
            elif kind == "send":
                sent += 1
                answer(command, ids=["OUT%d" % sent])
            else:
                answer(command)
        else:
            fail(command, "unknown command %s" % kind)


if __name__ == "__main__":
    main()
