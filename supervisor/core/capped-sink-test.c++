// SPDX-License-Identifier: Apache-2.0
// Tests of CappedSink: a worker's live output is counted, and the first byte past the cap (or
// an empty or late write) is refused and reported once.
// Runs in: tests

#include "capped-sink.h"

#include <capnp/capability.h>
#include <doctest/doctest.h>
#include <kj/async-io.h>

#include <string>

namespace chitin {
namespace {

struct SinkRig {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::PromiseFulfillerPair<void> overflow = kj::newPromiseAndFulfiller<void>();
  kj::ForkedPromise<void> overflowed = overflow.promise.fork();
  rpc::ByteSink::Client sink;

  explicit SinkRig(uint64_t cap) : sink(kj::heap<CappedSink>(cap, kj::mv(overflow.fulfiller))) {}

  // true when the write was accepted.
  bool write(size_t size) {
    auto request = sink.writeRequest();
    std::string bytes(size, 'x');
    request.setChunk(kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), size));
    // write is a `-> stream` method: its promise carries no result.
    return request.send()
        .then([]() { return true; }, [](kj::Exception&&) { return false; })
        .wait(io.waitScope);
  }
  bool end() {
    return sink.endRequest()
        .send()
        .then([](auto&&) { return true; }, [](kj::Exception&&) { return false; })
        .wait(io.waitScope);
  }
  bool hasOverflowed() { return overflowed.addBranch().poll(io.waitScope); }
};

TEST_CASE("capped sink: writes up to the cap are accepted; the next byte is refused, once") {
  SinkRig f(1000);
  CHECK(f.write(600));
  CHECK(f.write(400));
  CHECK_FALSE(f.hasOverflowed());
  CHECK_FALSE(f.write(1));
  CHECK(f.hasOverflowed());
  CHECK_FALSE(f.write(1));  // still refused; the fulfiller is not touched twice
}

TEST_CASE("capped sink: one chunk larger than the cap is refused whole") {
  SinkRig f(1000);
  CHECK_FALSE(f.write(1001));
  CHECK(f.hasOverflowed());
}

TEST_CASE("capped sink: an empty write counts as abuse") {
  SinkRig empty(1000);
  CHECK_FALSE(empty.write(0));
  CHECK(empty.hasOverflowed());
}

TEST_CASE("capped sink: a write after end() counts as abuse") {
  SinkRig late(1000);
  CHECK(late.write(10));
  CHECK(late.end());
  CHECK_FALSE(late.hasOverflowed());
  CHECK_FALSE(late.write(10));
  CHECK(late.hasOverflowed());
}

}  // namespace
}  // namespace chitin
