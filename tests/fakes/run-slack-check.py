#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs slack-check/check-fake-slack.mjs (Slack's Node SDK against fake_slack.py), installing the
SDK with `npm ci` into WORK_DIR first if it is not there (package-lock.json pins it). If the SDK
cannot be installed the test fails rather than skips: the fake would go unchecked.

Runs in: tests only. Usage: run-slack-check.py WORK_DIR
"""
import os
import subprocess
import sys

from npm_project import ensure_npm_project

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "slack-check")


def main():
    work = sys.argv[1]
    ensure_npm_project(SOURCE, work, ("package.json", "package-lock.json", "check-fake-slack.mjs"),
                       os.path.join("@slack", "socket-mode"), "the Slack SDK")
    fake = os.path.join(HERE, "fake_slack.py")
    r = subprocess.run(["node", os.path.join(work, "check-fake-slack.mjs"), sys.executable, fake],
                       cwd=work, timeout=120)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
