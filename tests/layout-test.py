#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The path tells the trust level (STYLE.md), checked:

1. No worker source includes a header that lives under supervisor/ or cli/ (shared code goes
   through common/).
2. Privileged operations are a closed list: the calls that build sandboxes or change identity
   (unshare, setns, mount, pivot_root, setuid family, seccomp loading) appear only in the files
   listed below, each with the reason it may.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRIVILEGED = re.compile(r"\b(unshare|setns|mount|umount2?|pivot_root|chroot|setuid|setgid|setresuid|"
                        r"setresgid|setgroups|seccomp_load|seccomp_init)\s*\(")
ALLOWED = {
    "supervisor/spawn/": "the spawner builds every sandbox",
    "common/sandbox-child.c++": "the in-sandbox half of the spawner's recipe (limits, lockdown)",
    "common/seccomp-groups.c++": "filter construction shared by the spawner and the lockdown",
    "common/zygote.c++": "a forked worker's own namespaces and mounts, before its filter (zygote.h)",
    "supervisor/core/home.c++": "dropRootTo(): the one-way switch from root to the service user",
    "tests/": "tests drop root and probe denials on purpose",
}


def sources(top):
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if not d.startswith("build") and d != "node_modules"]
        for f in filenames:
            if f.endswith((".c++", ".h")):
                yield os.path.join(dirpath, f)


def rel(path):
    return os.path.relpath(path, ROOT)


def main():
    problems = []
    supervisor_headers = {os.path.basename(p) for top in ("supervisor", "cli") for p in sources(top)
                          if p.endswith(".h")}
    common_headers = {os.path.basename(p) for p in sources("common") if p.endswith(".h")}
    include = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    for path in sources("workers"):
        with open(path) as f:
            for name in include.findall(f.read()):
                base = os.path.basename(name)
                if "supervisor/" in name or "cli/" in name or (
                        base in supervisor_headers and base not in common_headers):
                    problems.append(f"{rel(path)} includes supervisor/CLI header {name}")
    checked = 0
    for top in ("supervisor", "workers", "common", "cli"):
        for path in sources(top):
            checked += 1
            r = rel(path)
            if any(r.startswith(prefix) for prefix in ALLOWED):
                continue
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    code = line.split("//", 1)[0]
                    if PRIVILEGED.search(code):
                        problems.append(f"{r}:{n}: privileged call outside the allowed files: {line.strip()}")
    for p in problems:
        print("FAIL", p)
    print(f"{checked} source files checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
