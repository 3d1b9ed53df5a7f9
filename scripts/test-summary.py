#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The last line of scripts/test: every pass's results, counted from meson's own test logs.

Usage: test-summary.py BUILD_DIR...   (each holding meson-logs/testlog.json of its last run)
Prints one line per build directory and then `N passed, N failed` over all of them; exits 1
when any test failed or timed out, or a log is missing.
"""
import json
import os
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main(dirs):
    passed = failed = skipped = 0
    for d in dirs:
        path = os.path.join(d, "meson-logs", "testlog.json")
        try:
            with open(path) as f:
                results = [json.loads(line)["result"] for line in f if line.strip()]
        except (OSError, ValueError, KeyError) as e:
            print(f"  {d}: no test log ({e})")
            failed += 1
            continue
        p = sum(r in PASSED for r in results)
        s = sum(r in SKIPPED for r in results)
        f = len(results) - p - s
        print(f"  {d:<12} {p} ok, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
