# SPDX-License-Identifier: Apache-2.0
"""An npm project (a client library that checks a fake) copied into a work directory and
installed there with `npm ci`, pinned by its package-lock.json; reinstalled when the package
files change. Shared by the checks of the fakes (grammy/run-check.py, run-slack-check.py).

Runs in: tests only.
"""
import os
import shutil
import subprocess
import sys


def ensure_npm_project(source, work, files, installed, what):
    """Copies `files` from `source` into `work` and runs `npm ci` there unless `installed` (a
    path under node_modules) exists. A failed install fails the check: an unchecked fake must
    never pass."""
    os.makedirs(work, exist_ok=True)
    for name in files:
        src, dst = os.path.join(source, name), os.path.join(work, name)
        if not os.path.exists(dst) or open(src).read() != open(dst).read():
            shutil.copyfile(src, dst)
            if name in ("package.json", "package-lock.json"):
                shutil.rmtree(os.path.join(work, "node_modules"), ignore_errors=True)
    if not os.path.isdir(os.path.join(work, "node_modules", installed)):
        print(f"installing {what}: npm ci in", work, flush=True)
        if subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=work).returncode != 0:
            sys.exit(f"FAIL: npm ci failed; {what} is needed to check the fake")
