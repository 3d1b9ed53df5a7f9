#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Differential test: chitin's Cedar engine against the reference Cedar (cedar-wasm).

Generates seeded-random requests over the shipped policies, the examples and the hand-written
corpus (tests/policy/corpus/), each with its entity store; authorizes every request with
supervisor/policy/policy-batch and with cedar-ref.cjs (npm @cedar-policy/cedar-wasm, installed
with `npm ci` into the build directory if missing); fails on any difference in the decision or
in the set of determining policies. Prints "N requests, M differences".

Before that, the conformance cases: every line of syntax-cases.txt must parse in both engines
or in neither (a `differs:` line: only in the reference, as docs/cedar-subset.md states), and
every store in store-cases.json must be accepted by both or refused by both. The cases that
parse join the random requests as one more policy set.

Usage: run-diff.py POLICY_BATCH SOURCE_ROOT WORK_DIR [--seed S] [--per-set N]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

ACTIONS = ["chat", "exec", "read", "write", "edit", "message_send", "web_fetch", "web_search",
           "browse", "approve", "command", "sessions_list", "sessions_history", "sessions_send"]
SESSION_ACTIONS = ("sessions_list", "sessions_history", "sessions_send")
NASTY = ["", " ", "ls -la", "rm -rf x", "env sh -c 'x'", "ls; rm x", "a*b", "*", "\\*", "\\",
         "\"quoted\"", "line\nbreak", "tab\there", "t\u00e9l\u00e9gram:1", "telegram:5",
         "public/hours.md", "public/", "\u0000nul", "\U0001F600", "$(id)", "`id`", "~/x",
         "a" * 300, "telegram:*", "x\n*y"]
PROGRAMS = ["ls", "cat", "pwd", "grep", "rm", "env", "sh", "git", "find", "", "LS", "l*s",
            "ls\n", "lsx", "./ls", "l"]
PATHS = ["notes/todo.md", "public/hours.md", "public/a*b.md", "public/x.txt", "MEMORY.md",
         "publicity.md", "public/sub/deep.md", "\u00e9/\u00fc.md", "sp ace.md", "a\"q.md",
         "public/\\*.md"]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def uid(t, i):
    return {"type": t, "id": i}


def default_entities():
    # The same store as policy-model.c++'s defaultEntities().
    return [
        {"uid": uid("Group", "owners"), "attrs": {}, "parents": []},
        {"uid": uid("User", "owner"), "attrs": {}, "parents": [uid("Group", "owners")]},
        {"uid": uid("Sender", "local:operator"), "attrs": {}, "parents": [uid("User", "owner")]},
        {"uid": uid("Agent", "main"), "attrs": {"owner": {"__entity": uid("User", "owner")}},
         "parents": []},
    ]


def with_files(entities, rng):
    """Adds File entities the way the supervisor does: File::"<agent>/<path>" under the agent."""
    agents = [e["uid"]["id"] for e in entities if e["uid"]["type"] == "Agent"] + ["ghost"]
    files = []
    for a in agents:
        for p in PATHS:
            files.append({"uid": uid("File", a + "/" + p), "attrs": {"agent": a, "path": p},
                          "parents": [uid("Agent", a)]})
    return entities + files


def with_hosts(entities):
    """Adds Host entities the way the supervisor does: Host::"<host>" with {name, port}."""
    hosts = [("example.com", 443), ("docs.python.org", 443), ("docs.python.org", 80),
             ("pastebin.com", 443), ("a.ngrok.io", 443), ("packages.debian.org", 443)]
    # One entity per uid: the port of the first listing wins (the others test the default).
    seen = {}
    for h, p in hosts:
        seen.setdefault(h, p)
    return entities + [{"uid": uid("Host", h), "attrs": {"name": h, "port": p}, "parents": []}
                       for h, p in seen.items()]


def with_sessions(entities):
    """Adds Session entities the way the supervisor does (policy-model.h sessionEntity): a
    direct session in the Sender it belongs to, a group's in nothing."""
    sessions = [("agent:main:webchat:direct:owner", "local:operator"),
                ("agent:main:telegram:direct:5", "telegram:5"),
                ("agent:main:telegram:direct:999", "telegram:999"),
                ("agent:main:telegram:group:-100", None)]
    out = []
    for key, sender in sessions:
        _, agent, channel, chat, sid = key.split(":", 4)
        out.append({"uid": uid("Session", key),
                    "attrs": {"agent": agent, "channel": channel, "chat": chat, "id": sid},
                    "parents": [uid("Sender", sender)] if sender else []})
    return entities + out


def rand_value(rng, depth=0):
    k = rng.random()
    if k < 0.45:
        return rng.choice(NASTY)
    if k < 0.65:
        # JavaScript numbers are exact only up to 2**53, so the reference can only be given
        # those; overflow comes from the policies' arithmetic instead (n * n with n = 2**32).
        return rng.choice([0, 1, -1, 2, 3, 4294967296, -4294967296, 9007199254740991,
                           -9007199254740991, 42])
    if k < 0.8:
        return rng.choice([True, False])
    if k < 0.9 and depth < 2:
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2:
        return {rng.choice(["a", "b", "command"]): rand_value(rng, depth + 1)}
    return "leaf"


def rand_context(rng, action):
    ctx = {}

    def maybe(key, gen, p_missing=0.08, p_odd=0.05, odd=lambda: "yes"):
        r = rng.random()
        if r < p_missing:
            return
        ctx[key] = odd() if r < p_missing + p_odd else gen()

    maybe("tainted", lambda: rng.random() < 0.4)
    maybe("confirmed", lambda: rng.random() < 0.5, odd=lambda: 0)
    maybe("channel", lambda: rng.choice(["telegram", "local", "webchat", "slack", "t\u00e9l\u00e9x",
                                         "", "a:b", rng.choice(NASTY)]), odd=lambda: 1)
    maybe("chatType", lambda: rng.choice(["direct", "group"]))
    maybe("mentioned", lambda: rng.random() < 0.5)
    args = {}
    for key in rng.sample(["command", "path", "content", "url", "to", "text", "n"], rng.randint(0, 4)):
        args[key] = rand_value(rng)
    if rng.random() < 0.3:
        args["n"] = rng.choice([1, -5, 4294967296, 3037000500, 9007199254740991, "n"])
    ctx["args"] = args if rng.random() > 0.03 else "notarecord"
    if action == "exec" or rng.random() < 0.1:
        maybe("program", lambda: rng.choice(PROGRAMS), odd=lambda: 7)
        maybe("simple", lambda: rng.random() < 0.6)
    if rng.random() < 0.1:
        ctx["tags"] = rng.choice([[], ["x"], [1, "x"]])
    return ctx


def rand_request(rng, entities):
    principals = [e["uid"] for e in entities if e["uid"]["type"] in ("Sender", "User", "Group")]
    principals += [uid("Sender", "telegram:999"), uid("User", "mallory"), uid("Sender", ""),
                   uid("Sender", "quote\"back\\slash"), uid("Sender", "local:operator"),
                   uid("Agent", "main")]
    action = rng.choice(ACTIONS) if rng.random() > 0.03 else "fly"
    files = [e["uid"] for e in entities if e["uid"]["type"] == "File"]
    agents = [e["uid"] for e in entities if e["uid"]["type"] == "Agent"] + [uid("Agent", "ghost")]
    if action in ("read", "write", "edit") and rng.random() < 0.85:
        resource = rng.choice(files) if rng.random() < 0.9 else uid("File", "main/unlisted.md")
    elif action in ("web_fetch", "web_search", "browse") and rng.random() < 0.8:
        resource = uid("Host", rng.choice(["example.com", "169.254.169.254", "localhost",
                                           "docs.python.org", "pastebin.com", "a.ngrok.io",
                                           "packages.debian.org"]))
    elif action in SESSION_ACTIONS and rng.random() < 0.8:
        sessions = [e["uid"] for e in entities if e["uid"]["type"] == "Session"]
        resource = rng.choice(sessions or [uid("Session", "agent:main:cli:direct:x")])
    elif action == "message_send" and rng.random() < 0.8:
        resource = uid("Recipient", rng.choice(["telegram:5", "telegram:6", "slack:#x"]))
    else:
        resource = rng.choice(agents + files[:3])
    return {"principal": rng.choice(principals), "action": uid("Action", action),
            "resource": resource, "context": rand_context(rng, action)}


def policy_sets(root):
    pol = os.path.join(root, "policies")
    ex = os.path.join(pol, "examples")
    corpus = os.path.join(HERE, "corpus")
    corpus_entities = load_json(os.path.join(corpus, "entities.json"))
    sets = [
        ("default", [os.path.join(pol, "default.cedar")], with_sessions(default_entities())),
        ("team-server", [os.path.join(ex, "team-server.cedar")],
         load_json(os.path.join(ex, "team-server.entities.json"))),
        ("read-only", [os.path.join(ex, "read-only.cedar")],
         load_json(os.path.join(ex, "read-only.entities.json"))),
        ("kiosk", [os.path.join(pol, "default.cedar"), os.path.join(ex, "kiosk.cedar")],
         load_json(os.path.join(ex, "kiosk.entities.json"))),
        ("web-allowlist", [os.path.join(pol, "default.cedar"), os.path.join(ex, "web-allowlist.cedar")],
         with_hosts(default_entities())),
        ("web-denylist", [os.path.join(pol, "default.cedar"), os.path.join(ex, "web-denylist.cedar")],
         with_hosts(default_entities())),
    ]
    for f in sorted(os.listdir(corpus)):
        if f.endswith(".cedar"):
            sets.append(("corpus/" + f, [os.path.join(corpus, f)], corpus_entities))
    # Everything at once, so forbids from one file meet permits from another.
    sets.append(("all-corpus+default",
                 [os.path.join(pol, "default.cedar")] +
                 [os.path.join(corpus, f) for f in sorted(os.listdir(corpus)) if f.endswith(".cedar")],
                 corpus_entities))
    return sets


def ensure_reference(work):
    """npm ci into WORK/ if the reference is not there yet; returns the node_modules dir."""
    os.makedirs(work, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        src = os.path.join(HERE, f)
        dst = os.path.join(work, f)
        if not os.path.exists(dst) or open(src).read() != open(dst).read():
            shutil.copyfile(src, dst)
            shutil.rmtree(os.path.join(work, "node_modules"), ignore_errors=True)
    modules = os.path.join(work, "node_modules")
    if not os.path.isdir(os.path.join(modules, "@cedar-policy", "cedar-wasm")):
        print("installing the reference: npm ci in", work, flush=True)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work)
        if r.returncode != 0:
            sys.exit("FAIL: npm ci failed; the reference Cedar is needed for this test")
    return modules


def run_lines(cmd, lines):
    data = "".join(json.dumps(l) + "\n" for l in lines)
    for attempt in range(2):
        try:
            r = subprocess.run(cmd, input=data, capture_output=True, text=True)
        except FileNotFoundError:
            sys.exit(f"FAIL: {cmd[0]} not found (scripts/test installs node and npm)")
        if r.returncode == 0:
            return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        # Node 20 has been seen to crash (a V8 deoptimizer abort) under memory pressure on a
        # shared machine; that says nothing about either engine, so it gets one more try. A
        # reference that cannot be loaded (exit 3) fails at once.
        if cmd[0] != "node" or r.returncode == 3 or attempt == 1:
            break
        print(f"NOTE: {cmd[0]} crashed (exit {r.returncode}); retrying once", flush=True)
    sys.exit(f"FAIL: {cmd[0]} exited {r.returncode}: {r.stderr[-2000:]}")


def syntax_cases():
    """[(label, policy text, documented difference)] from syntax-cases.txt."""
    cases = []
    with open(os.path.join(HERE, "syntax-cases.txt")) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            differs = line.startswith("differs: ")
            body = line[len("differs: "):] if differs else line
            if not body.startswith(("@", "permit", "forbid", "namespace", "/*")):
                body = f"permit (principal, action, resource) when {{ {body} }};"
            cases.append((f"syntax-cases.txt:{n}", body, differs))
    return cases


def check_conformance(batch, modules, work):
    """Parse and store acceptance in both engines. Returns (differences, a .cedar file of the
    cases that parse)."""
    ref_cmd = ["node", os.path.join(HERE, "cedar-ref.cjs"), modules]
    cases = syntax_cases()
    ours = run_lines([batch], [{"op": "policies", "policyText": t} for _, t, _ in cases])
    ref = run_lines(ref_cmd, [{"op": "check", "policies": t} for _, t, _ in cases])
    differences = 0
    accepted = []
    for (label, text, differs), o, r in zip(cases, ours, ref):
        we, they = "error" not in o, "error" not in r
        if differs:
            if we or not they:
                differences += 1
                print(f"DIFF {label}: documented as rejected by chitin only, but chitin "
                      f"{'accepts' if we else 'rejects'} and the reference "
                      f"{'accepts' if they else 'rejects'}: {text[:120]}\n  reference: {r.get('error')}")
        elif we != they:
            differences += 1
            print(f"DIFF {label}: chitin {'accepts' if we else 'rejects'}, the reference "
                  f"{'accepts' if they else 'rejects'}: {text[:120]}\n"
                  f"  ours: {o.get('error', '')[:300]}\n  reference: {r.get('error', '')[:300]}")
        elif we:
            accepted.append(f'@id("{label}")\n' + text.removeprefix("@id(\"trailing\",) "))
    stores = load_json(os.path.join(HERE, "store-cases.json"))
    ours = run_lines([batch], [{"op": "entities", "entities": c["entities"]} for c in stores])
    ref = run_lines(ref_cmd, [{"op": "entities", "entities": c["entities"]} for c in stores])
    for case, o, r in zip(stores, ours, ref):
        if ("error" in o) != ("error" in r):
            differences += 1
            print(f"DIFF store-cases.json \"{case['name']}\": ours {o}, reference {r}")
    print(f"conformance: {len(cases)} parse cases ({len(accepted)} parse), {len(stores)} stores, "
          f"{differences} differences", flush=True)
    path = os.path.join(work, "syntax-accepted.cedar")
    with open(path, "w") as f:
        f.write("\n".join(accepted) + "\n")
    return differences, path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batch")
    ap.add_argument("root")
    ap.add_argument("work")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHITIN_DIFF_SEED", "20240")))
    ap.add_argument("--per-set", type=int, default=300)
    a = ap.parse_args()
    modules = ensure_reference(a.work)
    rng = random.Random(a.seed)
    conformance_differences, accepted = check_conformance(a.batch, modules, a.work)
    sets = policy_sets(a.root)
    sets.append(("syntax-cases (those that parse)", [accepted], sets[-1][2]))

    ours_lines, ref_lines, labels = [], [], []
    for name, files, entities in sets:
        entities = with_files(entities, rng)
        got = run_lines([a.batch], [{"op": "policies", "policyFiles": files}])
        if "error" in got[0]:
            sys.exit(f"FAIL: {name}: our engine rejects the policies: {got[0]['error']}")
        requests = [rand_request(rng, entities) for _ in range(a.per_set)]
        ours_lines.append({"policyFiles": files, "entities": entities, "requests": requests})
        ref_lines.append({"policies": got[0]["policies"], "entities": entities, "requests": requests})
        labels += [(name, r) for r in requests]

    ours = run_lines([a.batch], ours_lines)
    ref = run_lines(["node", os.path.join(HERE, "cedar-ref.cjs"), modules], ref_lines)
    if len(ours) != len(labels) or len(ref) != len(labels):
        sys.exit(f"FAIL: expected {len(labels)} answers, got {len(ours)} ours, {len(ref)} reference")

    differences = 0
    error_count_mismatches = 0
    allows = 0
    with_errors = 0
    for (name, req), o, r in zip(labels, ours, ref):
        if "error" in o or "error" in r:
            differences += 1
            print(f"DIFF {name}: ours={o.get('error')} reference={r.get('error')}")
            continue
        allows += o["decision"] == "allow"
        with_errors += r["errors"] > 0
        if o["decision"] != r["decision"] or sorted(o["determining"]) != sorted(r["determining"]):
            differences += 1
            if differences <= 20:
                print(f"DIFF {name}: ours {o['decision']} {sorted(o['determining'])}, reference "
                      f"{r['decision']} {sorted(r['determining'])}\n  request: {json.dumps(req)}\n"
                      f"  our errors: {o.get('errorMessages')}\n  reference errors: {r.get('errorMessages')}")
        elif o["errors"] != r["errors"]:
            error_count_mismatches += 1
            if error_count_mismatches <= 10:
                print(f"NOTE {name}: error counts differ (ours {o['errors']}, reference "
                      f"{r['errors']}): {o.get('errorMessages')} vs {r.get('errorMessages')}")
    print(f"seed {a.seed}: {allows} allowed, {len(labels) - allows} denied, "
          f"{with_errors} with evaluation errors; {error_count_mismatches} error-count mismatches")
    print(f"{len(labels)} requests, {differences} differences")
    return 1 if differences or error_count_mismatches or conformance_differences else 0


if __name__ == "__main__":
    sys.exit(main())
