# SPDX-License-Identifier: Apache-2.0
"""WhatsApp end to end: the real gateway and the sandboxed chitin-worker-channel-whatsapp, whose
adapter runs tests/fakes/fake_whatsapp_bridge.mjs as its Node bridge, the fake model answering.

WhatsApp itself cannot be reached here, so the bridge (the Baileys end of the worker) is a fake
speaking the same JSON lines. It is not swapped in by any setting of the shipped worker: each
test builds a worker directory of its own (harness.workers_dir: every real worker of the build)
with the fake as whatsapp-bridge/bridge.mjs beside them, and points `sandbox { worker_dir }` at
it, as an owner could point chitin at another installation. The profile then mounts that
directory at /opt/chitin/whatsapp-bridge exactly as it mounts the real one. The phone's side
is played through the account's state directory, which is the fake's /state (see the fake's
header): messages are injected there, and what the worker asked the bridge to do is read back.
Run by meson (`meson test --suite e2e`).
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason()
if not SKIP and not os.access("/usr/bin/node", os.X_OK):
    SKIP = "Node.js is not installed at /usr/bin/node (the WhatsApp worker runs its bridge with it)"
FAKE_BRIDGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                           "fake_whatsapp_bridge.mjs")
PHONE = "15551234567"
DM = PHONE + "@s.whatsapp.net"
GROUP = "120363000000000001@g.us"
QR = "2@fake-qr,Zm9v,YmFy,YmF6"


class FakeBridge:
    """The fake bridge's window: the account's state directory, as the test (root or the gateway's
    user) sees it on the host."""

    def __init__(self, gw):
        self.dir = os.path.join(gw.home, "state", "channels", "whatsapp", "default", "whatsapp")
        self.count = 0

    def commands(self, kind=None, jid=None):
        try:
            with open(os.path.join(self.dir, "commands.jsonl")) as f:
                lines = [json.loads(l) for l in f.read().splitlines() if l.strip()]
        except OSError:
            return []
        return [c for c in lines if (kind is None or c.get("type") == kind)
                and (jid is None or c.get("jid") == jid)]

    def starts(self):
        return len(self.commands("_started"))

    def inject(self, *events):
        """Hands events to the running bridge (or the next one, if none runs), in this order."""
        inject = harness.wait_for(lambda: (lambda p: p if os.path.isdir(p) else None)(
            os.path.join(self.dir, "inject")), what="the fake bridge's inject/ directory")
        for event in events:
            self.count += 1
            name = f"{self.count:06d}"
            tmp = os.path.join(inject, f".{name}.tmp")
            with open(tmp, "w") as f:
                json.dump(event, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(inject, f"{name}.json"))

    def message(self, text, jid=DM, sender=PHONE, mentioned=False, media=None, msg_id=None):
        """An inbound message event as the bridge emits it; returns it (its "id" included)."""
        self.count_ids = getattr(self, "count_ids", 0) + 1
        event = {"type": "message", "jid": jid, "id": msg_id or f"3A{self.count_ids:014d}",
                 "sender": sender, "pushName": "Alice", "text": text, "mentioned": mentioned,
                 "fromMe": False, "ts": int(time.time())}
        if media is not None:
            event["media"] = media
        return event

    def sent_texts(self, jid):
        return [c["text"] for c in self.commands("send", jid) if c.get("text")]


class WhatsAppTest(unittest.TestCase):
    """A fake model, a worker directory with the fake bridge, and a gateway with one WhatsApp
    account; setUp links it (QR shown, phone scans) unless the test links it itself."""

    LINK = True

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-whatsapp-")
        workers = harness.workers_dir(self.dir, {})
        bridge = os.path.join(workers, "whatsapp-bridge")
        os.mkdir(bridge)
        os.chmod(bridge, 0o755)
        shutil.copyfile(FAKE_BRIDGE, os.path.join(bridge, "bridge.mjs"))
        os.chmod(os.path.join(bridge, "bridge.mjs"), 0o644)
        self.model = harness.FakeModel(self.dir)
        config = channels.channels_config([channels.account("whatsapp")],
                                          extra=f'sandbox {{ worker_dir: "{workers}" }}\n')
        self.gw = harness.Gateway(self.model, config=config)
        self.bridge = FakeBridge(self.gw)
        self.ws = None
        if self.LINK:
            channels.wait_for_state(self.gw, "whatsapp", "login_required")
            self.ws = self.gw.connect()
            r = self.gw.request(self.ws, "channels.login", {"kind": "whatsapp", "after": 0,
                                                            "waitSeconds": 10})
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["payload"].get("qr"), QR, r)
            self.bridge.inject({"type": "_scan"})
            channels.wait_for_state(self.gw, "whatsapp", "connected")

    def tearDown(self):
        if self.ws is not None:
            self.ws.close()
        self.gw.cleanup()
        self.model.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_sent(self, jid, count, timeout=20):
        try:
            return harness.wait_for(
                lambda: (lambda s: s if len(s) >= count else None)(self.bridge.sent_texts(jid)),
                timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"{count} messages to {jid} expected, sent: "
                                 f"{self.bridge.sent_texts(jid)}\n{self.gw.stderr()[-3000:]}")

    def pair(self):
        """The phone writes first, gets a code, the owner approves it: then it may chat."""
        self.bridge.inject(self.bridge.message("hello?"))
        code_message = self.wait_sent(DM, 1)[0]
        pending = channels.pending_pairing(self.gw)
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_message)
        self.assertEqual(pending[0]["sender"], PHONE)
        self.assertEqual(pending[0]["channel"], "whatsapp")
        channels.approve_pairing(self.gw, pending[0]["code"])
        return 1  # messages the bot sent so far to the DM


@unittest.skipIf(SKIP, SKIP or "")
class WhatsAppLogin(WhatsAppTest):
    LINK = False

    def test_the_qr_code_reaches_the_cli_and_status_shows_the_link(self):
        status = channels.wait_for_state(self.gw, "whatsapp", "login_required")
        self.assertIn("chitin channels login whatsapp", status.get("detail", ""))
        login = subprocess.Popen([harness.CHITIN, "channels", "login", "whatsapp", "--timeout", "20"],
                                 env=self.gw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            harness.wait_for(lambda: self.bridge.commands("login.start"), what="login.start")
            # The QR payload reached the gateway (and through it the CLI, below).
            ws = self.gw.connect()
            try:
                r = self.gw.request(ws, "channels.login",
                                    {"kind": "whatsapp", "after": 0, "waitSeconds": 10})
            finally:
                ws.close()
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["payload"]["qr"], QR)
            rows = r["payload"]["qrRows"]
            self.assertGreaterEqual(len(rows), 21)
            self.assertTrue(all(len(row) == len(rows) and set(row) <= {"0", "1"} for row in rows))
            self.assertNotEqual(channels.account_status(self.gw, "whatsapp")["state"], "connected")
            self.bridge.inject({"type": "_scan"})  # the phone scanned it
            out, err = login.communicate(timeout=30)
        finally:
            if login.poll() is None:
                login.kill()
                login.wait()
        self.assertEqual(login.returncode, 0, f"{out}\n{err}")
        self.assertIn("Scan this with the phone", out)
        # Drawn by qrencode where it is installed, else its payload is shown.
        self.assertTrue(QR in out or "\u2588" in out or "\u2580" in out, out)
        self.assertIn("logged in", out)
        status = channels.wait_for_state(self.gw, "whatsapp", "connected")
        self.assertEqual(status.get("identity"), "+15550000000", status)

    def test_a_pairing_code_for_a_phone_number_reaches_the_gateway(self):
        channels.wait_for_state(self.gw, "whatsapp", "login_required")
        ws = self.gw.connect()
        try:
            r = self.gw.request(ws, "channels.login", {"kind": "whatsapp", "after": 0,
                                                       "phoneNumber": "+1 555 123 4567",
                                                       "waitSeconds": 10})
        finally:
            ws.close()
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["payload"]["pairingCode"], "FAKE2345", r)
        self.assertEqual(self.bridge.commands("login.start")[-1]["phone"], "+1 555 123 4567")


@unittest.skipIf(SKIP, SKIP or "")
class WhatsAppChat(WhatsAppTest):
    def test_pairing_then_chat_with_ack_and_typing_on_the_same_chat(self):
        sent = self.pair()
        hi = self.bridge.message("hi again")
        self.bridge.inject(hi)
        self.assertEqual(self.wait_sent(DM, sent + 1)[-1], "echo: hi again")
        reacts = self.bridge.commands("react", DM)
        self.assertIn((hi["id"], "\U0001F440"), [(r["key"]["id"], r["emoji"]) for r in reacts])
        typing = self.bridge.commands("typing", DM)
        self.assertTrue(any(t["on"] for t in typing), typing)  # `composing` while the run is on

    def test_a_group_message_is_answered_only_when_the_bot_is_mentioned(self):
        self.pair()
        self.bridge.inject(self.bridge.message("lunch at noon?", jid=GROUP),
                           self.bridge.message("@chitin what is on the menu", jid=GROUP,
                                               mentioned=True))
        self.assertEqual(self.wait_sent(GROUP, 1), ["echo: @chitin what is on the menu"])
        time.sleep(1.5)
        self.assertEqual(self.bridge.sent_texts(GROUP), ["echo: @chitin what is on the menu"])

    def test_an_attachment_lands_in_inbox_and_taints_the_session(self):
        sent = self.pair()
        data = b"hello from the phone\n"
        self.bridge.inject(self.bridge.message("my notes", media={
            "kind": "document", "mime": "text/plain", "name": "notes.txt", "size": len(data),
            "data_b64": base64.b64encode(data).decode()}))
        self.wait_sent(DM, sent + 1)
        name, content = channels.inbox_file(self.gw)
        self.assertTrue(name.endswith("notes.txt"), name)
        self.assertEqual(content, data)
        r = self.gw.cli("sessions", "--json")
        sessions = {s["key"]: s for s in json.loads(r.stdout)["sessions"]}
        self.assertTrue(sessions[f"agent:main:whatsapp:direct:{PHONE}"]["tainted"], sessions)


@unittest.skipIf(SKIP, SKIP or "")
class WhatsAppLifecycle(WhatsAppTest):
    def assert_answered_once(self, sent, texts):
        time.sleep(1.5)  # a repeat would have arrived by now
        got = self.bridge.sent_texts(DM)[sent:]
        self.assertEqual(sorted(got), sorted(f"echo: {t}" for t in texts), got)

    def test_a_crashed_bridge_is_restarted_and_nothing_is_lost_or_doubled(self):
        sent = self.pair()
        before = self.bridge.message("before")
        self.bridge.inject(before)
        self.wait_sent(DM, sent + 1)
        # A message arrives and the bridge dies right after handing it over.
        in_flight = self.bridge.message("in flight")
        self.bridge.inject(in_flight, {"type": "_exit", "code": 3})
        harness.wait_for(lambda: self.bridge.starts() >= 2, what="a new bridge")
        channels.wait_for_state(self.gw, "whatsapp", "connected")
        # WhatsApp hands a linked device again what it may not have taken: the same ids.
        self.bridge.inject(before, in_flight, self.bridge.message("after"))
        self.wait_sent(DM, sent + 3)
        self.assert_answered_once(sent, ["before", "in flight", "after"])
        self.assertEqual(self.bridge.starts(), 2)

    def test_kill_9_of_the_worker_restarts_it_and_nothing_is_lost_or_doubled(self):
        sent = self.pair()
        before = self.bridge.message("before")
        self.bridge.inject(before)
        self.wait_sent(DM, sent + 1)
        pids = harness.wait_for(lambda: self.gw.worker_pids("channel-whatsapp"),
                                what="the whatsapp worker")
        starts = self.bridge.starts()
        os.kill(pids[0], signal.SIGKILL)
        # Written while the worker (and with it the bridge) is dead: WhatsApp keeps it for the
        # linked device, and hands it over with the one already answered.
        self.bridge.inject(before, self.bridge.message("while down"))
        harness.wait_for(lambda: (lambda p: p and p != pids)(self.gw.worker_pids("channel-whatsapp")),
                         timeout=30, what="a new whatsapp worker")
        harness.wait_for(lambda: self.bridge.starts() > starts, what="a new bridge")
        self.bridge.inject(self.bridge.message("after"))
        self.wait_sent(DM, sent + 3, timeout=30)
        self.assert_answered_once(sent, ["before", "while down", "after"])
        self.assertGreaterEqual(channels.account_status(self.gw, "whatsapp")["restarts"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
