// SPDX-License-Identifier: Apache-2.0
// Tests of WorkerLog: a worker's output reaches the log as escaped lines under its label,
// capped, and a flood neither blocks the loop nor fills the log.
// Runs in: tests

#include "worker-log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace chitin {
namespace {

struct LogRig {
  uv_loop_t loop;
  kj::AutoCloseFd readEnd, writeEnd;
  std::vector<std::string> lines;

  LogRig() {
    KJ_ASSERT(uv_loop_init(&loop) == 0);
    int fds[2];
    KJ_SYSCALL(pipe2(fds, O_CLOEXEC));
    readEnd = kj::AutoCloseFd(fds[0]);
    writeEnd = kj::AutoCloseFd(fds[1]);
    KJ_SYSCALL(fcntl(readEnd, F_SETFL, O_NONBLOCK));
  }
  ~LogRig() {
    uv_run(&loop, UV_RUN_DEFAULT);  // lets closed handles go
    uv_loop_close(&loop);
  }

  std::unique_ptr<WorkerLog> start(WorkerLogLimits limits = {}) {
    return std::make_unique<WorkerLog>(&loop, kj::mv(readEnd), "worker w", limits,
                                       [this](const std::string& label, const std::string& line) {
                                         lines.push_back(label + ": " + line);
                                       });
  }

  // Writes all of `text`, turning the loop whenever the pipe is full (as a worker would block).
  void write(const std::string& text) {
    KJ_SYSCALL(fcntl(writeEnd, F_SETFL, O_NONBLOCK));
    size_t done = 0;
    for (int turns = 0; done < text.size() && turns < 10000; turns++) {
      ssize_t n = ::write(writeEnd, text.data() + done, text.size() - done);
      if (n > 0) done += n;
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    REQUIRE(done == text.size());
  }

  // Turns the loop (never blocking) until `done` or about a second has passed.
  template <typename F>
  void turnUntil(F done) {
    for (int i = 0; i < 1000 && !done(); i++) {
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(1000);
    }
  }
};

TEST_CASE("worker log: lines arrive under the worker's label, control bytes escaped") {
  LogRig f;
  auto log = f.start();
  f.write("first line\nsecond \x1b[31mred\x1b[0m \xe2\x80\xae\nno newline at the end");
  f.writeEnd = nullptr;  // EOF: the partial line is logged too
  f.turnUntil([&] { return log->ended(); });
  CHECK(log->ended());
  REQUIRE(f.lines.size() == 3);
  CHECK(f.lines[0] == "worker w: first line");
  CHECK(f.lines[1] == "worker w: second \\x1b[31mred\\x1b[0m \\xe2\\x80\\xae");
  CHECK(f.lines[2] == "worker w: no newline at the end");
}

TEST_CASE("worker log: over the per-window cap, lines are dropped with one note") {
  LogRig f;
  WorkerLogLimits limits;
  limits.logBytesPerWindow = 1000;
  auto log = f.start(limits);
  for (int i = 0; i < 100; i++) f.write(std::string(99, 'a' + i % 26) + "\n");
  f.writeEnd = nullptr;
  f.turnUntil([&] { return log->ended(); });
  // 10 lines of 100 bytes fit; the 11th would pass 1000.
  REQUIRE(f.lines.size() == 11);
  CHECK(f.lines[9] == "worker w: " + std::string(99, 'j'));
  CHECK(f.lines[10] ==
        "worker w: (more than 1000 bytes of output in 60 s; dropping the rest of "
        "this window)");
  CHECK(log->droppedBytes() == 9000);
}

TEST_CASE("worker log: a long line is cut, not buffered without end") {
  LogRig f;
  WorkerLogLimits limits;
  limits.maxLineBytes = 10;
  auto log = f.start(limits);
  f.write(std::string(100000, 'x') + "\nshort\n");
  f.writeEnd = nullptr;
  f.turnUntil([&] { return log->ended(); });
  REQUIRE(f.lines.size() == 2);
  CHECK(f.lines[0] == "worker w: xxxxxxxxxx [line cut]");
  CHECK(f.lines[1] == "worker w: short");
}

TEST_CASE("worker log: a flood is read only up to the window's budget; the loop never blocks") {
  LogRig f;
  WorkerLogLimits limits;
  limits.readBytesPerWindow = 64 * 1024;
  auto log = f.start(limits);
  // The writer end is non-blocking too: the test must not block when the pipe fills.
  KJ_SYSCALL(fcntl(f.writeEnd, F_SETFL, O_NONBLOCK));
  std::string chunk(16 * 1024, 'z');
  size_t written = 0;
  for (int round = 0; round < 200; round++) {
    ssize_t n = ::write(f.writeEnd, chunk.data(), chunk.size());
    if (n > 0) written += n;
    uv_run(&f.loop, UV_RUN_NOWAIT);
  }
  f.turnUntil([] { return false; });  // about a second more: nothing else is read
  CHECK(written > 64 * 1024);
  CHECK(log->readBytes() == 64 * 1024);
  CHECK_FALSE(log->ended());
  // Without newlines nothing but the cut line would be logged; the budget caps the reading.
  CHECK(f.lines.empty());
}

}  // namespace
}  // namespace chitin
