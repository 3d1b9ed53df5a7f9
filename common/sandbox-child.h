// SPDX-License-Identifier: Apache-2.0
// The last steps of sandbox set-up, which must run inside the sandbox itself.
// Runs in: worker (sandboxed)
//
// The spawner (supervisor/spawn/) decides every limit and filter; these functions only apply
// what it passed. Both fail closed: a missing or malformed limit argument, or a filter that
// does not load, throws and the worker exits before reading any request.

#pragma once

#include <kj/array.h>
#include <kj/string.h>

namespace chitin {

// The argv flag the spawner passes: "--chitin-limits=as=N,nproc=N,nofile=N,cpu=N,fsize=N".
constexpr const char LIMITS_FLAG[] = "--chitin-limits=";
// One per directory the spawner hid (SpawnRequest::hide): "--chitin-hidden=/workspace/downloads".
constexpr const char HIDDEN_FLAG[] = "--chitin-hidden=";
// Where the egress broker's socket is inside the sandbox; the spawner adds it exactly when it
// binds one (profile `egress: true`). A worker without it has no way to the network.
constexpr const char EGRESS_FLAG[] = "--chitin-egress=";

// First thing in every worker: not dumpable, so that no other process of the sandbox (the
// commands the exec worker runs, which exec and so are dumpable again) can open the worker's
// /proc/1/fd/*, mem, environ, maps or cwd: those need ptrace access, which a non-dumpable
// process grants only to CAP_SYS_PTRACE in its user namespace, and no one in a sandbox has it.
// Throws if the kernel refuses.
void makeUndumpableInChild();

// Checks that every HIDDEN_FLAG path is what the spawner asked bwrap for: a read-only, empty
// tmpfs directory (not a symlink). bwrap mounts over whatever is at the path when it runs, so a
// directory swapped for a symlink between the spawner's check and the mount would cover the
// wrong place; this refuses to serve then. Throws on any mismatch.
void checkHiddenInChild(int argc, char** argv);

// Finds LIMITS_FLAG in argv and applies each value as both soft and hard rlimit
// (RLIMIT_AS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CPU, RLIMIT_FSIZE). Throws if the flag is
// missing, a key is unknown, or a value is not a positive integer.
void applyLimitsInChild(int argc, char** argv);

// Stacks the worker kind's post-bootstrap seccomp filter on top of the profile's filter.
// Known kinds: "session", "model", "exec", "read", "write", "edit", "probe", and every
// "channel-<kind>". Unknown kind throws.
void lockDownInWorker(kj::StringPtr kind);
// The same filter built ahead (a zygote builds it once for all the workers it forks: building it
// is most of a worker's start-up allocation), as the BPF program lockDownWithProgram() loads.
kj::Array<kj::byte> lockdownProgramFor(kj::StringPtr kind);
void lockDownWithProgram(kj::ArrayPtr<const kj::byte> program);
// Stacks the classic BPF program `program` (as exported by seccomp::Filter, or bwrap's
// --seccomp format) on the calling thread; no_new_privs must be set. 0, or the errno.
int loadSeccompProgram(kj::ArrayPtr<const kj::byte> program);

}  // namespace chitin
