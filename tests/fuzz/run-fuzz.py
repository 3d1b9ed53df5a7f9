#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs one libFuzzer target on its seed corpus without writing into it.

    run-fuzz.py TARGET SEED_DIR WORK_DIR [libFuzzer flags...]

libFuzzer adds the inputs it finds to the *first* corpus directory it is given, so WORK_DIR
(emptied first) goes first and SEED_DIR second, read only. Crash inputs land in
WORK_DIR/crashes/. Used by the `fuzz` suite (tests/fuzz/meson.build) and scripts/fuzz.
"""
import os
import shutil
import sys


def main():
    target, seeds, work, *flags = sys.argv[1:]
    scratch = os.path.join(work, "corpus")
    crashes = os.path.join(work, "crashes")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    os.makedirs(crashes, exist_ok=True)
    args = [target, "-seed=1", "-timeout=25", "-rss_limit_mb=2048", "-max_len=65536",
            "-print_final_stats=1", "-error_exitcode=1", "-timeout_exitcode=1", "-artifact_prefix=" + crashes + "/"]
    dictionary = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dict",
                              os.path.basename(seeds) + ".dict")
    if os.path.exists(dictionary):
        args.append("-dict=" + dictionary)
    args += flags + [scratch, seeds]
    sys.stdout.flush()
    os.execv(target, args)


if __name__ == "__main__":
    main()
