#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The last line of scripts/test: every pass's results, counted from meson's own test logs.

Usage: test-summary.py LOG.json...   (meson test's JSON logs: BUILD/meson-logs/LOGBASE.json)
Prints one line per log and then `N passed, N failed` over all of them; exits 1
when any test failed or timed out, or a log is missing.
"""
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main(logs):
    passed = failed = skipped = 0
    for path in logs:
        try:
            with open(path) as f:
                results = [json.loads(line)["result"] for line in f if line.strip()]
        except (OSError, ValueError, KeyError) as e:
            print(f"  {path}: no test log ({e})")
            failed += 1
            continue
        p = sum(r in PASSED for r in results)
        s = sum(r in SKIPPED for r in results)
        f = len(results) - p - s
        print(f"  {path:<36} {p} ok, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
