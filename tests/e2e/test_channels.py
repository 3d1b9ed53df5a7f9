# SPDX-License-Identifier: Apache-2.0
"""Channel accounts through the real gateway: what it refuses before any worker starts, what
`chitin channels` and `chitin doctor` report. (Each platform's own end-to-end tests, with its fake
server and sandboxed worker, build on tests/e2e/channels.py.)

Run by meson (`meson test --suite e2e`); each test starts its own gateway on 127.0.0.1.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class ChannelAccounts(unittest.TestCase):
    def test_an_exposed_credential_stops_its_account_with_the_fix_and_nothing_of_it_leaks(self):
        d = tempfile.mkdtemp(prefix="chitin-e2e-chan-")
        os.chmod(d, 0o755)
        exposed = channels.write_credential(d, "tg-token", "123:sekrit-token")
        os.chmod(exposed, 0o644)
        missing = os.path.join(d, "absent-token")
        config = channels.channels_config([
            channels.account("telegram", exposed),
            channels.account("discord", missing, name="work"),
            channels.account("slack", name="off", disabled=True),
        ])
        gw = harness.Gateway(config=config)
        try:
            tg = channels.wait_for_state(gw, "telegram", "failed")
            self.assertIn(f"run `chmod 600 {exposed}`", tg["detail"])
            self.assertFalse(tg.get("running", False))
            self.assertIn("api.telegram.org:443 (telegram platform)", tg["egress"])
            dc = channels.wait_for_state(gw, "discord", "failed", name="work")
            self.assertIn(f"{missing}: no such file", dc["detail"])
            self.assertEqual(channels.account_status(gw, "slack", "off")["state"], "disabled")
            r = gw.cli("channels", "status")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # an account failed
            self.assertIn("telegram/default", r.stdout)
            self.assertEqual(gw.worker_pids("channel-telegram"), [])
            # The secret is in no output and no log.
            doctor = gw.cli("doctor")
            self.assertIn(f"FAIL  channel telegram/default: credential {exposed}", doctor.stdout)
            for text in (r.stdout, doctor.stdout, gw.stderr(), str(gw.audit())):
                self.assertNotIn("sekrit", text)
        finally:
            gw.cleanup()


FAKE_SIGNAL = os.path.join(os.path.dirname(__file__), "..", "fakes", "fake_signal_cli.py")
BOT, BOT_UUID = "+15550000000", "00000000-0000-4000-8000-000000000001"
ALICE_UUID = "a11ce000-0000-4000-8000-00000000a11c"


class FakeSignal:
    """tests/fakes/fake_signal_cli.py on 127.0.0.1, with its control API."""

    def __init__(self, d):
        port_file = os.path.join(d, "signal.port")
        self.proc = subprocess.Popen([harness.PYTHON, FAKE_SIGNAL, "--port", "0", "--port-file",
                                      port_file, "--account", BOT, "--account-uuid", BOT_UUID],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = int(harness.wait_for(lambda: harness._read(port_file).strip(), what="port"))
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_control/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def calls(self, method):
        return [c["params"] for c in self.control("calls") if c["method"] == method]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@unittest.skipIf(SKIP, SKIP or "")
class SignalThroughTheGateway(unittest.TestCase):
    """The whole path with a real sandboxed worker: fake signal-cli -> the Signal worker (through
    the egress broker) -> the channel router -> the agent core (no model: its fixed reply) ->
    back on the same chat."""

    def test_a_stranger_gets_a_code_then_talks_once_paired_and_files_land_in_the_inbox(self):
        d = tempfile.mkdtemp(prefix="chitin-e2e-signal-")
        signal = FakeSignal(d)
        config = channels.channels_config([channels.account(
            "signal", options={"url": signal.url, "account": BOT, "accountUuid": BOT_UUID})])
        gw = harness.Gateway(config=config)
        try:
            channels.wait_for_state(gw, "signal", "connected")
            signal.control("message", {"fromUuid": ALICE_UUID, "name": "Alice", "text": "hello",
                                       "timestamp": 1700000000001})
            sent = harness.wait_for(lambda: signal.calls("send"), timeout=20, what="a reply")
            self.assertIn(sent[0].get("recipient"), (ALICE_UUID, [ALICE_UUID]))
            self.assertIn("pairing code", sent[0]["message"])
            [request] = channels.pending_pairing(gw)
            self.assertEqual((request["channel"], request["sender"]), ("signal", ALICE_UUID))
            self.assertIn(request["code"], sent[0]["message"])
            self.assertEqual(signal.calls("sendReaction"), [])  # nothing but the code

            channels.approve_pairing(gw, request["code"])
            signal.control("message", {"fromUuid": ALICE_UUID, "text": "what is this?",
                                       "timestamp": 1700000000002,
                                       "attachments": [{"name": "../../notes.txt",
                                                        "mime": "text/plain",
                                                        "data": base64.b64encode(b"hi").decode()}]})
            harness.wait_for(lambda: len(signal.calls("send")) == 2, timeout=20, what="a reply")
            reply = signal.calls("send")[1]
            self.assertIn("No model is configured", reply["message"])
            reaction = harness.wait_for(lambda: signal.calls("sendReaction"), what="the ack")[0]
            self.assertEqual(reaction["emoji"], "\U0001F440")
            self.assertTrue(signal.calls("sendTyping"))
            inbox = os.listdir(os.path.join(gw.workspace, "inbox"))
            self.assertEqual(len(inbox), 1)
            self.assertTrue(inbox[0].endswith("-notes.txt"), inbox)
            session = "agent:main:signal:direct:" + ALICE_UUID
            user = [e for e in gw.transcript(session) if e.get("role") == "user"][-1]
            self.assertIn("inbox/" + inbox[0], user["content"])
            self.assertIn("files attached by signal:" + ALICE_UUID, user.get("untrusted", ""))
            self.assertEqual(len(channels.seen_ids(gw, "signal")), 2)

            # kill -9 of the worker: audited, started again, and the chat goes on.
            pids = gw.worker_pids("channel-signal")
            self.assertTrue(pids)
            for pid in pids:
                os.kill(pid, 9)
            harness.wait_for(lambda: channels.account_status(gw, "signal").get("restarts", 0) >= 1,
                             timeout=20, what="a restart")
            channels.wait_for_state(gw, "signal", "connected")
            signal.control("message", {"fromUuid": ALICE_UUID, "text": "still there?",
                                       "timestamp": 1700000000003})
            harness.wait_for(lambda: len(signal.calls("send")) == 3, timeout=20, what="a reply")
            exits = [r for r in gw.audit() if r.get("kind") == "WORKER_EXIT"
                     and r.get("tool") == "channel-signal"]
            self.assertEqual(len(exits), 1, exits)
            self.assertEqual(len(channels.seen_ids(gw, "signal")), 3)
        finally:
            gw.cleanup()
            signal.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
