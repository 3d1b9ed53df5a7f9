#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs slack-check/check-fake-slack.mjs (Slack's Node SDK against fake_slack.py), installing the
SDK with `npm ci` into WORK_DIR first if it is not there (package-lock.json pins it). If the SDK
cannot be installed the test fails rather than skips: the fake would go unchecked.

Runs in: tests only. Usage: run-slack-check.py WORK_DIR
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "slack-check")


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    for name in ("package.json", "package-lock.json", "check-fake-slack.mjs"):
        src, dst = os.path.join(SOURCE, name), os.path.join(work, name)
        if not os.path.exists(dst) or open(src).read() != open(dst).read():
            shutil.copyfile(src, dst)
            if name != "check-fake-slack.mjs":
                shutil.rmtree(os.path.join(work, "node_modules"), ignore_errors=True)
    if not os.path.isdir(os.path.join(work, "node_modules", "@slack", "socket-mode")):
        print("installing the Slack SDK: npm ci in", work, flush=True)
        if subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=work).returncode != 0:
            sys.exit("FAIL: npm ci failed; the Slack SDK is needed to check the fake")
    fake = os.path.join(HERE, "fake_slack.py")
    r = subprocess.run(["node", os.path.join(work, "check-fake-slack.mjs"), sys.executable, fake],
                       cwd=work, timeout=120)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
