// SPDX-License-Identifier: Apache-2.0
// The last steps of sandbox set-up, which must run inside the sandbox itself.
// Runs in: worker (sandboxed)
//
// The spawner (supervisor/spawn/) decides every limit and filter; these functions only apply
// what it passed. Both fail closed: a missing or malformed limit argument, or a filter that
// does not load, throws and the worker exits before reading any request.

#pragma once

#include <kj/string.h>

namespace chitin {

// The argv flag the spawner passes: "--chitin-limits=as=N,nproc=N,nofile=N,cpu=N,fsize=N".
constexpr const char LIMITS_FLAG[] = "--chitin-limits=";

// Finds LIMITS_FLAG in argv and applies each value as both soft and hard rlimit
// (RLIMIT_AS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CPU, RLIMIT_FSIZE). Throws if the flag is
// missing, a key is unknown, or a value is not a positive integer.
void applyLimitsInChild(int argc, char** argv);

// Stacks the worker kind's post-bootstrap seccomp filter on top of the profile's filter.
// Known kinds: "session", "model", "exec", "read", "write", "edit", "probe". Unknown kind throws.
void lockDownInWorker(kj::StringPtr kind);

}  // namespace chitin
