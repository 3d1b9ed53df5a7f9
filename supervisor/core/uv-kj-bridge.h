// SPDX-License-Identifier: Apache-2.0
// Runs KJ's event loop (Cap'n Proto RPC) inside the supervisor's libuv loop, on one thread.
// Runs in: supervisor
//
// libuv is the master loop (libwebsockets needs it). KJ keeps its own UnixEventPort; we watch
// that port's epoll fd with a uv_poll and pump KJ (`waitScope.poll()`) when it is readable, from
// a uv_prepare hook before libuv blocks (to flush KJ work queued by uv callbacks), and when a
// uv_timer mirroring KJ's next timer fires. Rules that keep this sound (stack-notes §4):
//   - poll() is only ever called from top-level uv callbacks, never from inside KJ code;
//   - no KJ continuation runs uv_run();
//   - signals and child processes belong to libuv (never KJ onSignal/onChildExit).

#pragma once

#include <kj/async-io.h>
#include <uv.h>

namespace chitin {

class UvKjBridge {
 public:
  // `io` must outlive the bridge. Starts watching immediately.
  UvKjBridge(uv_loop_t* loop, kj::AsyncIoContext& io);
  ~UvKjBridge() noexcept(false);
  KJ_DISALLOW_COPY(UvKjBridge);

  // Runs KJ until it has nothing ready. Safe to call from any top-level uv callback.
  void pump();

  // Stops watching; the uv handles close on the loop's next turn (run the loop afterwards).
  void close();

  // How many times KJ was pumped (for tests and the benchmark).
  uint64_t pumps() const { return pumps_; }

 private:
  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  uv_poll_t poll_;
  uv_prepare_t prepare_;
  uv_timer_t timer_;
  bool closed_ = false;
  bool pumping_ = false;
  uint64_t pumps_ = 0;

  void armTimer();
  static void onPoll(uv_poll_t* handle, int status, int events);
  static void onPrepare(uv_prepare_t* handle);
  static void onTimer(uv_timer_t* handle);
};

}  // namespace chitin
