#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the WhatsApp bridge folder the worker runs: the bridge's sources copied to DEST and
its pinned dependencies installed there with `npm ci` (package-lock.json), which runs again
only when the lock file changed. Writes STAMP when DEST is complete.

Runs in: the build (meson custom_target), and `meson install` (--install DEST_ROOT).
Usage: install-bridge.py SRC DEST STAMP
       install-bridge.py --install BUILT DEST  (copies a built bridge, node_modules included)
"""
import filecmp
import os
import shutil
import subprocess
import sys

SOURCES = ("bridge.mjs", "egress.mjs", "mapping.mjs", "package.json", "package-lock.json", ".npmrc")


def build(src, dest, stamp):
    dest = os.path.normpath(dest)
    os.makedirs(dest, exist_ok=True)
    lock_changed = not os.path.exists(os.path.join(dest, "package-lock.json")) or not filecmp.cmp(
        os.path.join(src, "package-lock.json"), os.path.join(dest, "package-lock.json"), shallow=False)
    for name in SOURCES:
        shutil.copy2(os.path.join(src, name), os.path.join(dest, name))
    # The tests run from the built copy, next to its node_modules; `--install` leaves them out.
    shutil.copytree(os.path.join(src, "test"), os.path.join(dest, "test"), dirs_exist_ok=True)
    if lock_changed or not os.path.isdir(os.path.join(dest, "node_modules", "baileys")):
        print("npm ci for the WhatsApp bridge in", dest, flush=True)
        r = subprocess.run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=dest)
        if r.returncode != 0:
            sys.exit("the WhatsApp bridge's dependencies did not install (npm ci failed)")
    with open(stamp, "w") as f:
        f.write("ok\n")


def install(built, dest_root):
    dest = os.path.join(os.environ.get("MESON_INSTALL_DESTDIR_PREFIX", ""), dest_root) \
        if not os.path.isabs(dest_root) else os.environ.get("DESTDIR", "") + dest_root
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns("test"), symlinks=True)


if __name__ == "__main__":
    if sys.argv[1] == "--install":
        install(sys.argv[2], sys.argv[3])
    else:
        build(*sys.argv[1:4])
