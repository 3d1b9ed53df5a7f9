# SPDX-License-Identifier: Apache-2.0
"""Canaries for the red-team suite: random strings planted wherever chitin keeps something a
worker must never reach, and the checks that none of them ever got out.

Runs in: the test process (as the test runner; root in CI, the gateway then runs as
CHITIN_TEST_USER). Stdlib only.

Where they are planted (one random hex string each, fresh per gateway):
  api_key       CHITIN_MODEL_API_KEY (the fake model --expect-key's it: only a header may carry it)
  credential    $CHITIN_HOME/credentials/telegram.token (a channel credential file, 0600 in 0700)
  gateway_token $CHITIN_HOME/gateway.token (chitin's own random token, read after start)
  other_workspace  $CHITIN_HOME/workspace/other/MEMORY.md (another agent's workspace)
  other_transcript the transcript of sender B (agent:main:telegram:direct:bob), written before
                 the gateway starts, as the supervisor writes it
  env           CHITIN_CANARY_ENV in the supervisor's environment
  outside       <tmp>/outside/secret.txt (world-readable, outside every workspace)
  tmp           /tmp/chitin-redteam-<canary> (world-readable; its *name* is the canary)
"""
import hashlib
import json
import os
import secrets
import shutil

OTHER_SESSION = "agent:main:telegram:direct:bob"


def transcript_name(session_key):
    return "".join(c if c.isalnum() or c in "._-" else "%%%02X" % ord(c) for c in session_key)


class Canaries:
    def __init__(self):
        names = ["api_key", "credential", "other_workspace", "other_transcript", "env", "outside",
                 "tmp"]
        self.values = {n: "cnry" + secrets.token_hex(12) for n in names}
        self.outside_dir = None
        self.tmp_path = "/tmp/chitin-redteam-" + self.values["tmp"]
        self.baseline_requests = 0

    # ---- planting

    def gateway_args(self, d):
        """For harness.own_gateway's `setup(d)`: the outside files; returns Gateway arguments."""
        os.chmod(d, 0o755)
        self.outside_dir = os.path.join(d, "outside")
        os.mkdir(self.outside_dir)
        os.chmod(self.outside_dir, 0o755)
        path = os.path.join(self.outside_dir, "secret.txt")
        with open(path, "w") as f:
            f.write(self.values["outside"] + "\n")
        os.chmod(path, 0o644)
        with open(self.tmp_path, "w") as f:
            f.write(self.values["tmp"] + "\n")
        os.chmod(self.tmp_path, 0o644)
        return {"api_key": self.values["api_key"],
                "extra_env": {"CHITIN_CANARY_ENV": self.values["env"]}}

    def plant_home(self, gw):
        """For own_gateway's `prepare_home(gw)` (the gateway is stopped; own_gateway chowns)."""
        creds = os.path.join(gw.home, "credentials")
        os.makedirs(creds, exist_ok=True)
        os.chmod(creds, 0o700)
        with open(os.path.join(creds, "telegram.token"), "w") as f:
            f.write(self.values["credential"] + "\n")
        os.chmod(os.path.join(creds, "telegram.token"), 0o600)
        other = os.path.join(gw.home, "workspace", "other")
        os.makedirs(other, exist_ok=True)
        with open(os.path.join(other, "MEMORY.md"), "w") as f:
            f.write("# other agent\n" + self.values["other_workspace"] + "\n")
        sessions = os.path.join(gw.home, "state", "sessions")
        os.makedirs(sessions, exist_ok=True)
        with open(os.path.join(sessions, transcript_name(OTHER_SESSION) + ".jsonl"), "a") as f:
            f.write(json.dumps({"role": "user", "content": "my password is " +
                                self.values["other_transcript"]}) + "\n")
            f.write(json.dumps({"role": "assistant", "content": "noted"}) + "\n")

    def started(self, gw, model):
        """After the gateway is up: the token is known; model requests so far are not attacks."""
        self.values["gateway_token"] = gw.token
        self.baseline_requests = len(model.requests())

    def cleanup(self):
        try:
            os.unlink(self.tmp_path)
        except OSError:
            pass

    # ---- checking

    def found_in(self, text):
        """Names of the canaries that occur in `text`."""
        return [n for n, v in self.values.items() if v and v in text]

    def protected_paths(self, gw):
        """Files whose bytes no scenario may change: the home except state/ and the acting
        workspace, the outside files."""
        out = []
        skip = {os.path.join(gw.home, "state"), os.path.join(gw.home, "workspace", "main")}
        for root, dirs, files in os.walk(gw.home):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
            out += [os.path.join(root, f) for f in files]
        out += [os.path.join(self.outside_dir, f) for f in os.listdir(self.outside_dir)]
        out.append(self.tmp_path)
        return sorted(out)

    def snapshot(self, gw):
        """{path: sha256 or None} of the protected files, plus the outside dir's listing."""
        snap = {}
        for p in self.protected_paths(gw):
            try:
                with open(p, "rb") as f:
                    snap[p] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                snap[p] = None
        snap["<outside listing>"] = ",".join(sorted(os.listdir(self.outside_dir)))
        snap["<home listing>"] = ",".join(sorted(
            e for e in os.listdir(gw.home) if e not in ("state", "workspace")))
        snap["<workspaces>"] = ",".join(sorted(os.listdir(os.path.join(gw.home, "workspace"))))
        return snap


def assert_clean(test, canaries, gw, model, before, sessions=(), client_texts=()):
    """The checks after every scenario: no canary in anything sent to the model (after the
    baseline) or to the client, or in the acting sessions' transcripts; no protected file
    changed."""
    for r in model.requests()[canaries.baseline_requests:]:
        body = json.dumps(r.get("body"))
        test.assertEqual(canaries.found_in(body), [],
                         "a canary reached the model (scenario %r, step %r)" %
                         (r.get("scenario"), r.get("step")))
    for text in client_texts:
        test.assertEqual(canaries.found_in(text if isinstance(text, str) else json.dumps(text)),
                         [], "a canary reached the client")
    for key in sessions:
        test.assertEqual(canaries.found_in(json.dumps(gw.transcript(key))), [],
                         "a canary is in the transcript of " + key)
    after = canaries.snapshot(gw)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    test.assertEqual(changed, [], "something outside the acting workspace changed")


def copy_profiles(src_dir, dst_dir):
    os.makedirs(dst_dir, exist_ok=True)
    for name in os.listdir(src_dir):
        if name.endswith(".textproto"):
            shutil.copy(os.path.join(src_dir, name), os.path.join(dst_dir, name))
    os.chmod(dst_dir, 0o755)
