// SPDX-License-Identifier: Apache-2.0
// Tests for running KJ inside the libuv loop.
// Runs in: test

#include "uv-kj-bridge.h"

#include <doctest/doctest.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <unistd.h>

#include <string>

namespace chitin {
namespace {

struct Loop {
  uv_loop_t loop;
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Loop() { CHECK(uv_loop_close(&loop) == 0); }
};

TEST_CASE("uv-kj bridge: a KJ timer fires while libuv runs the loop") {
  Loop l;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&l.loop, io);
    bool fired = false;
    auto task = io.provider->getTimer()
                    .afterDelay(20 * kj::MILLISECONDS)
                    .then([&]() {
                      fired = true;
                      bridge.close();  // nothing else keeps the loop alive
                    })
                    .eagerlyEvaluate(nullptr);
    bridge.pump();  // arms the timer mirror
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(fired);
  }
}

TEST_CASE("uv-kj bridge: a uv timer fulfils a KJ promise and the continuation runs") {
  Loop l;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&l.loop, io);
    auto paf = kj::newPromiseAndFulfiller<int>();
    int got = 0;
    auto task = paf.promise.then([&](int v) { got = v; }).eagerlyEvaluate(nullptr);
    struct Ctx {
      kj::PromiseFulfiller<int>* fulfiller;
    } ctx{paf.fulfiller.get()};
    uv_timer_t timer;
    uv_timer_init(&l.loop, &timer);
    timer.data = &ctx;
    uv_timer_start(
        &timer,
        [](uv_timer_t* t) {
          static_cast<Ctx*>(t->data)->fulfiller->fulfill(42);
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        },
        5, 0);
    // The prepare hook runs KJ before libuv blocks again, so the continuation runs without any
    // KJ fd becoming readable.
    uv_timer_t stop;
    uv_timer_init(&l.loop, &stop);
    stop.data = &bridge;
    uv_timer_start(
        &stop,
        [](uv_timer_t* t) {
          static_cast<UvKjBridge*>(t->data)->close();
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        },
        50, 0);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(got == 42);
    CHECK(bridge.pumps() > 0);
  }
}

TEST_CASE("uv-kj bridge: KJ I/O readiness wakes the uv loop") {
  Loop l;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&l.loop, io);
    auto pipe = io.provider->newTwoWayPipe();
    char buf[8] = {};
    size_t got = 0;
    auto task = pipe.ends[1]
                    ->tryRead(buf, 1, sizeof(buf))
                    .then([&](size_t n) {
                      got = n;
                      bridge.close();
                    })
                    .eagerlyEvaluate(nullptr);
    auto write = pipe.ends[0]->write("hello", 5).eagerlyEvaluate(nullptr);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(got == 5);
    CHECK(std::string(buf, got) == "hello");
  }
}

}  // namespace
}  // namespace chitin
