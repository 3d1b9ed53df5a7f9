// SPDX-License-Identifier: Apache-2.0
// The real exec worker binary, started unsandboxed against a temporary workspace and driven
// over Cap'n Proto as the supervisor drives it.
// Runs in: test

#include <kj/function.h>
#include <time.h>

#include "worker-test-harness.h"

namespace chitin {
namespace {

using test::CallResult;
using test::CollectingSink;
using test::contains;
using test::readHostFile;
using test::TempDir;
using test::TestWorker;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
// A receiver that stops listening at the first chunk.
class ThrowingSink final : public rpc::ByteSink::Server {
 public:
  kj::Promise<void> write(WriteContext context) override {
    KJ_FAIL_REQUIRE("receiver stops listening");
  }
};
#pragma GCC diagnostic pop

struct ExecCall {
  std::string command;
  std::string workdir;
  uint32_t timeoutSeconds = 0;
};

struct Streamed {
  std::string bytes;
  bool ended = false;
};

kj::Promise<capnp::Response<rpc::ToolWorker::RunResults>> send(TestWorker& worker,
                                                               const ExecCall& args,
                                                               rpc::ByteSink::Client sink) {
  auto request = worker.worker.runRequest();
  auto exec = request.initInvocation().initExec();
  exec.setCommand(args.command);
  exec.setWorkdir(args.workdir);
  exec.setTimeoutSeconds(args.timeoutSeconds);
  request.setOutput(kj::mv(sink));
  return request.send();
}

CallResult run(kj::AsyncIoContext& io, TestWorker& worker, const ExecCall& args,
               Streamed& streamed) {
  auto response = send(worker, args, kj::heap<CollectingSink>(streamed.bytes, streamed.ended))
                      .wait(io.waitScope);
  return test::toCallResult(response.getResult());
}

// Runs one command in a fresh worker over `ws`.
CallResult runOnce(const TempDir& ws, const ExecCall& args, Streamed& streamed,
                   std::vector<std::string> flags = {}) {
  auto io = kj::setupAsyncIo();
  TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path(), kj::mv(flags));
  return run(io, worker, args, streamed);
}

double nowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

bool processGone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = readHostFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close != std::string::npos && stat.compare(close + 2, 1, "Z") == 0;  // a zombie
}

TEST_CASE("exec worker: exit status 3 is a failed result with the output, streamed live") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"echo hi; echo err >&2; exit 3"}, streamed);
  CHECK(r.failed);
  CHECK(r.exitCode == 3);
  CHECK(r.text == "hi\nerr\nexit code 3");
  CHECK_FALSE(r.timedOut);
  CHECK_FALSE(r.truncated);
  CHECK(streamed.bytes == "hi\nerr\n");
  CHECK(streamed.ended);
}

TEST_CASE("exec worker: success returns the output with exit code 0") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"printf 'a\\nb\\n'"}, streamed);
  CHECK_FALSE(r.failed);
  CHECK(r.exitCode == 0);
  CHECK(r.text == "a\nb\n");
  Streamed quiet;
  CHECK(runOnce(ws, {"true"}, quiet).text == "(no output)");
}

TEST_CASE("exec worker: runs in the workdir with only PATH, HOME, LANG, TERM and no stdin") {
  TempDir ws;
  mkdir((ws / "sub").c_str(), 0755);
  setenv("CHITIN_TEST_LEAK", "should-not-pass", 1);
  Streamed streamed;
  auto r = runOnce(
      ws,
      {"pwd; env | grep -v -E '^(PWD|SHLVL|_)=' | sort; cat; echo stdin-done", "/workspace/sub"},
      streamed);
  unsetenv("CHITIN_TEST_LEAK");
  CHECK_FALSE(r.failed);
  CHECK(r.text == ws.path() + "/sub\n" + "HOME=" + ws.path() +
                      "\nLANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin\nTERM=dumb\n"
                      "stdin-done\n");
}

TEST_CASE("exec worker: a bad workdir is a failed result naming it") {
  TempDir ws;
  test::writeHostFile(ws / "file", "x");
  Streamed s1, s2, s3;
  CHECK(runOnce(ws, {"true", "nope"}, s1).text == "workdir not found: \"nope\"");
  CHECK(runOnce(ws, {"true", "../"}, s2).text == "workdir: path escapes the workspace: \"../\"");
  CHECK(runOnce(ws, {"true", "file"}, s3).text == "workdir is not a directory: \"file\"");
}

TEST_CASE("exec worker: timeout kills the whole process group and says so") {
  TempDir ws;
  Streamed streamed;
  double start = nowSeconds();
  auto r = runOnce(ws, {"sleep 300 & echo $! > bg.pid; echo started; sleep 300", "", 1}, streamed);
  double elapsed = nowSeconds() - start;
  CHECK(r.failed);
  CHECK(r.timedOut);
  CHECK(r.exitCode == -1);
  CHECK(r.text == "started\ntimed out after 1 s");
  CHECK(elapsed < 8);
  pid_t background = std::stoi(readHostFile(ws / "bg.pid"));
  usleep(100 * 1000);
  CHECK(processGone(background));
}

TEST_CASE("exec worker: processes left behind when bash exits are killed, not waited for") {
  TempDir ws;
  Streamed streamed;
  double start = nowSeconds();
  auto r = runOnce(ws, {"sleep 300 & echo $! > bg.pid; echo done"}, streamed);
  CHECK(nowSeconds() - start < 8);
  CHECK_FALSE(r.failed);
  CHECK(r.text == "done\n");
  pid_t background = std::stoi(readHostFile(ws / "bg.pid"));
  usleep(100 * 1000);
  CHECK(processGone(background));
}

TEST_CASE("exec worker: output beyond --max-output-bytes is cut in the result, not the stream") {
  TempDir ws;
  Streamed streamed;
  auto r =
      runOnce(ws, {"head -c 5000 /dev/zero | tr '\\0' x"}, streamed, {"--max-output-bytes=1000"});
  CHECK_FALSE(r.failed);
  CHECK(r.truncated);
  CHECK(r.text == std::string(1000, 'x') + "\n[output truncated: 5000 bytes total]");
  CHECK(streamed.bytes == std::string(5000, 'x'));
}

TEST_CASE("exec worker: the default cap is 64 KiB and large output streams through") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"head -c 3000000 /dev/zero | tr '\\0' y; exit 1"}, streamed);
  CHECK(r.failed);
  CHECK(r.truncated);
  CHECK(r.exitCode == 1);
  CHECK(r.text ==
        std::string(65536, 'y') + "\n[output truncated: 3000000 bytes total]\nexit code 1");
  CHECK(streamed.bytes.size() == 3000000);
}

TEST_CASE("exec worker: death by signal is reported with its name") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"echo before; kill -TERM $$"}, streamed);
  CHECK(r.failed);
  CHECK(r.text == "before\nkilled by signal 15 (SIGTERM)");
}

TEST_CASE("exec worker: output that is not UTF-8 reaches the model as valid text") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"printf 'ok \\377 ok'"}, streamed);
  CHECK(r.text == "ok \xef\xbf\xbd ok");
  CHECK(streamed.bytes == "ok \xff ok");  // the stream carries the raw bytes
}

TEST_CASE("exec worker: an empty command is a failed result") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {""}, streamed);
  CHECK(r.failed);
  CHECK(r.text == "command is empty");
}

TEST_CASE("exec worker: a receiver that stops listening does not stop the command") {
  TempDir ws;
  auto io = kj::setupAsyncIo();
  TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path());
  auto response =
      send(worker, {"echo one; echo two > two.txt; echo three"}, kj::heap<ThrowingSink>())
          .wait(io.waitScope);
  auto r = test::toCallResult(response.getResult());
  CHECK_FALSE(r.failed);
  CHECK(r.text == "one\nthree\n");
  CHECK(readHostFile(ws / "two.txt") == "two\n");
}

TEST_CASE("exec worker: a second run() and an unclamped timeout are protocol errors") {
  TempDir ws;
  auto io = kj::setupAsyncIo();
  {
    TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path());
    Streamed first;
    CHECK(run(io, worker, {"echo once"}, first).text == "once\n");
    Streamed second;
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { run(io, worker, {"echo twice"}, second); })) {
      CHECK(contains(e->getDescription().cStr(), "ToolWorker.run called twice"));
    } else {
      FAIL("second run() succeeded");
    }
  }
  {
    TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path());
    Streamed streamed;
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                   run(io, worker, {"touch ran", "", 3601}, streamed);
                 })) {
      CHECK(contains(e->getDescription().cStr(), "timeoutSeconds above the maximum"));
    } else {
      FAIL("timeoutSeconds 3601 accepted");
    }
    CHECK(readHostFile(ws / "ran") == "<missing>");
  }
}

}  // namespace
}  // namespace chitin
