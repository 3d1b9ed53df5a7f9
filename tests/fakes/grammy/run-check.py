#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks fake_telegram.py with grammY (npm, installed with `npm ci` into WORK_DIR on first run,
pinned by package-lock.json): starts the fake, runs check-fake-telegram.mjs against it.

Usage: run-check.py WORK_DIR
"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from npm_project import ensure_npm_project  # noqa: E402

FAKE = os.path.join(os.path.dirname(HERE), "fake_telegram.py")
TOKEN = "123456:test-token-for-grammy"


def ensure_grammy(work):
    ensure_npm_project(HERE, work, ("package.json", "package-lock.json", "check-fake-telegram.mjs"),
                       "grammy", "grammy")


def main():
    work = sys.argv[1]
    ensure_grammy(work)
    with tempfile.TemporaryDirectory(prefix="chitin-fake-telegram-") as tmp:
        port_file = os.path.join(tmp, "port")
        fake = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--port-file", port_file,
                                 "--token", TOKEN])
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(port_file):
                if fake.poll() is not None or time.monotonic() > deadline:
                    sys.exit("FAIL: fake_telegram.py did not start")
                time.sleep(0.02)
            root = "http://127.0.0.1:" + open(port_file).read().strip()
            r = subprocess.run(["node", "check-fake-telegram.mjs", root, TOKEN], cwd=work,
                               timeout=120)
            sys.exit(r.returncode)
        finally:
            fake.terminate()
            fake.wait()


if __name__ == "__main__":
    main()
