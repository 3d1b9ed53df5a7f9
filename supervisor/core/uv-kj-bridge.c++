// SPDX-License-Identifier: Apache-2.0
// KJ-inside-libuv glue (see uv-kj-bridge.h).
// Runs in: supervisor

#include "uv-kj-bridge.h"

#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/timer.h>
#include <spdlog/spdlog.h>

namespace chitin {

namespace {

// UnixEventPort keeps its epoll fd private in 0.9.2. This is the standard-conforming way to read
// a private member: explicit instantiation may name private members, and the friend function it
// defines hands the member pointer out. Tied to Debian's capnproto 0.9.2 headers; the
// constructor checks the fd really is an epoll instance.
struct EpollFdTag {
  using Type = kj::AutoCloseFd kj::UnixEventPort::*;
  friend Type memberOf(EpollFdTag);
};
template <typename Tag, typename Tag::Type Member>
struct PrivateMember {
  friend typename Tag::Type memberOf(Tag) { return Member; }
};
template struct PrivateMember<EpollFdTag, &kj::UnixEventPort::epollFd>;

int epollFdOf(kj::UnixEventPort& port) {
  int fd = (port.*memberOf(EpollFdTag{})).get();
  char link[64] = {};
  auto path = kj::str("/proc/self/fd/", fd);
  ssize_t n = readlink(path.cStr(), link, sizeof(link) - 1);
  KJ_ASSERT(n > 0 && kj::StringPtr(link, n) == "anon_inode:[eventpoll]",
            "KJ's event port is not epoll-based; the uv bridge needs capnproto 0.9.2's layout", fd);
  return fd;
}

// uv timers take milliseconds; cap the mirror so a far-away KJ timer is re-checked now and then.
constexpr uint64_t MAX_TIMER_MS = 60'000;

}  // namespace

UvKjBridge::UvKjBridge(uv_loop_t* loop, kj::AsyncIoContext& io) : loop_(loop), io_(io) {
  int fd = epollFdOf(io.unixEventPort);
  KJ_ASSERT(uv_poll_init(loop, &poll_, fd) == 0);
  poll_.data = this;
  KJ_ASSERT(uv_poll_start(&poll_, UV_READABLE, &onPoll) == 0);

  KJ_ASSERT(uv_prepare_init(loop, &prepare_) == 0);
  prepare_.data = this;
  KJ_ASSERT(uv_prepare_start(&prepare_, &onPrepare) == 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));  // never keeps the loop alive by itself

  KJ_ASSERT(uv_timer_init(loop, &timer_) == 0);
  timer_.data = this;
}

UvKjBridge::~UvKjBridge() noexcept(false) {
  KJ_ASSERT(closed_ || !uv_loop_alive(loop_),
            "UvKjBridge destroyed without close(); uv would touch freed handles");
}

void UvKjBridge::pump() {
  if (closed_ || pumping_) return;
  pumping_ = true;
  ++pumps_;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { io_.waitScope.poll(); })) {
    // Exceptions escaping a detached task are handled by their TaskSet; reaching here means a
    // bug in the glue itself. Log and keep serving.
    spdlog::error("KJ event loop raised: {}", e->getDescription().cStr());
  }
  pumping_ = false;
  armTimer();
}

void UvKjBridge::armTimer() {
  auto& timer = static_cast<kj::TimerImpl&>(io_.unixEventPort.getTimer());
  KJ_IF_MAYBE (ms, timer.timeoutToNextEvent(timer.now(), kj::MILLISECONDS, MAX_TIMER_MS)) {
    uv_timer_start(&timer_, &onTimer, *ms, 0);  // keeps the loop alive while KJ waits
  } else {
    uv_timer_stop(&timer_);
  }
}

void UvKjBridge::close() {
  if (closed_) return;
  closed_ = true;
  uv_poll_stop(&poll_);
  uv_prepare_stop(&prepare_);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void UvKjBridge::onPoll(uv_poll_t* handle, int status, int events) {
  static_cast<UvKjBridge*>(handle->data)->pump();
}

void UvKjBridge::onPrepare(uv_prepare_t* handle) { static_cast<UvKjBridge*>(handle->data)->pump(); }

void UvKjBridge::onTimer(uv_timer_t* handle) { static_cast<UvKjBridge*>(handle->data)->pump(); }

}  // namespace chitin
