// SPDX-License-Identifier: Apache-2.0
// libwebsockets, opened when the gateway starts instead of by ld.so before `main`.
// Runs in: supervisor
//
// libwebsockets brings OpenSSL's libssl and libcrypto, libcap and zlib: mapping, relocating and
// binding them was a third of the supervisor's process start (exec to its usage error, `perf stat
// -r 80`: 9.0 -> 5.9 ms without them), paid by `chitin sandbox` and `chitin doctor` too, which
// never serve a client. lws-loader.c++ defines each libwebsockets function the gateway calls
// (declared by libwebsockets' own header, so a signature that differs does not compile) as a
// call through a table loaded here (common/lazy-library.h); until it is loaded, and if it cannot
// be, each throws std::logic_error saying so (those returning nothing do nothing).
// Gateway::start() loads it and fails with what is missing.
//
// Not on a thread of its own, though that overlapped the rest of the start-up (start -> first
// client, medians of 12 alternating starts: 27.6 -> 26.1 ms): the libraries' constructors read
// the environment inside dlopen, the start-up sets TZ, HOME and USER, and setenv() beside a
// reading thread crashed a gateway (SIGSEGV, once in CI). A thread started after the last
// setenv() would be safe only for as long as nobody adds one.

#pragma once

#include <string>

namespace chitin::gateway {

// The soname chitin was built against ("libwebsockets.so.17").
const char* libwebsocketsSoname();

// Opens libwebsockets (once; a failure is tried again on the next call) and resolves every
// function the gateway uses: "" when they are all there; otherwise what is missing, naming the
// library or the function and the version chitin was built against. (Its libuv event-loop
// plugin is libwebsockets' own to open, when the gateway creates its context, and to report.)
std::string loadLibwebsockets();

// The same, with the library named: for the test of what a missing one says.
std::string loadLibwebsocketsFrom(const char* soname);

bool libwebsocketsLoaded();

}  // namespace chitin::gateway
