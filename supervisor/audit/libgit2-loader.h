// SPDX-License-Identifier: Apache-2.0
// libgit2, loaded when the first snapshot needs it instead of when the supervisor starts.
// Runs in: supervisor
//
// Only the snapshot thread uses libgit2, and only once a turn begins; yet linked normally, it
// and its thirteen dependencies (Kerberos, mbedTLS, libssh2, ...) are mapped and relocated by
// the loader before `main`: ~120 page faults, 3.6 ms of every start on a small VM. So the
// supervisor does not link it (common/lazy-library.h). libgit2-loader.c++ defines each libgit2
// function chitin calls (their declarations come from the git2 headers, so a signature that
// differs does not compile) as a call through the pointer `loadLibgit2()` resolved. Until then,
// and if it cannot be loaded, every such function throws std::logic_error saying so, except
// the `*_free` functions, which do nothing (no libgit2 object can exist yet), and
// `git_error_last`, which returns null. Snapshots call `loadLibgit2()` before their first
// libgit2 call and fail closed (no snapshot, no mutating tool call) with its message.

#pragma once

#include <string>

namespace chitin::audit {

// The soname chitin was built against ("libgit2.so.1.5").
const char* libgit2Soname();

// Opens libgit2 (once; a failure is tried again on the next call) and resolves every function
// chitin uses. "" when they are all there; otherwise what is missing, naming the library or
// the function and the libgit2 version chitin was built against.
std::string loadLibgit2();

// The same, with the library named: for the test of what a missing one says.
std::string loadLibgit2From(const char* soname);

bool libgit2Loaded();

}  // namespace chitin::audit
