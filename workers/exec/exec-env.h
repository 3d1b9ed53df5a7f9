// SPDX-License-Identifier: Apache-2.0
// The exact environment of an exec command: what it gets, and what it must not pick up from
// files an earlier command wrote (a fresh HOME; git's configuration that runs programs pinned).
// Runs in: worker (sandboxed)

#pragma once

#include <kj/array.h>
#include <kj/string.h>

namespace chitin {

// Where HOME is inside the exec sandbox: a tmpfs of its own, empty for every call (the exec
// profile mounts it).
constexpr const char EXEC_HOME[] = "/home/sandbox";

// "NAME=value" strings, in order: PATH, HOME=`home`, LANG, TERM, then git's (see exec-env.c++).
kj::Array<kj::String> execEnvironment(kj::StringPtr home);

}  // namespace chitin
