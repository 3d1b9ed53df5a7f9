// SPDX-License-Identifier: Apache-2.0
// libwebsockets, loaded on a thread of its own while the supervisor starts, instead of by ld.so
// before `main`.
// Runs in: supervisor
//
// libwebsockets brings OpenSSL's libssl and libcrypto, libcap and zlib: mapping, relocating and
// binding them was a third of the supervisor's process start (exec to its usage error, `perf stat
// -r 80`: 9.0 -> 5.9 ms without them), all of it before `main`, in series with everything
// else, and paid by `chitin sandbox` and `chitin doctor` too, which never serve a client. Loaded
// here (common/lazy-library.h) from the first line of the gateway's start-up, it overlaps
// reading the config, the policies and the audit log, which the gateway waits for anyway
// (start -> first client, medians of 12 alternating starts: 27.6 ms loading it in `main` when
// the gateway starts, 26.1 ms on the thread; on two cores the thread competes with the rest). lws-loader.c++ defines each libwebsockets function the gateway calls (declared by
// libwebsockets' own header, so a signature that differs does not compile) as a call through
// the loaded table; until it is loaded, and if it cannot be, each throws std::logic_error saying
// so (those returning nothing do nothing). Gateway::start() loads it (waiting for the thread if
// it is still at work) and fails with what is missing.

#pragma once

#include <string>
#include <thread>

namespace chitin::gateway {

// The soname chitin was built against ("libwebsockets.so.17").
const char* libwebsocketsSoname();

// Opens libwebsockets (once; a failure is tried again on the next call), resolves every
// function the gateway uses, and opens its libuv event-loop plugin, which libwebsockets would
// otherwise open itself while the gateway starts. "" when the functions are all there;
// otherwise what is missing, naming the library or the function and the version chitin was
// built against. (A missing plugin is libwebsockets' to report: the gateway's start says so.)
std::string loadLibwebsockets();

// The same, with the library named: for the test of what a missing one says.
std::string loadLibwebsocketsFrom(const char* soname);

bool libwebsocketsLoaded();

// loadLibwebsocketsInBackground()'s thread, joined when this goes: a process must not return
// from `main` (and destroy what the loader uses) while the thread is still inside dlopen, as a
// gateway that stops at a config error would.
class BackgroundLoad {
 public:
  explicit BackgroundLoad(std::thread thread) : thread_(std::move(thread)) {}
  BackgroundLoad(BackgroundLoad&&) = default;
  BackgroundLoad& operator=(BackgroundLoad&&) = delete;
  ~BackgroundLoad() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

// Starts loadLibwebsockets() on a thread of its own and returns; whoever calls
// loadLibwebsockets() next waits for it, or finds it done.
[[nodiscard]] BackgroundLoad loadLibwebsocketsInBackground();

}  // namespace chitin::gateway
