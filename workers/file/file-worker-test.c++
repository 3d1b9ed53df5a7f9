// SPDX-License-Identifier: Apache-2.0
// The real read, write and edit worker binaries, started unsandboxed against a temporary
// workspace and driven over Cap'n Proto as the supervisor drives them.
// Runs in: test

#include <kj/function.h>

#include "worker-test-harness.h"
#include "test-text.h"

namespace chitin {
namespace {

using chitin::testing::has;
using test::CallResult;
using test::CollectingSink;
using test::readHostFile;
using test::TempDir;
using test::TestWorker;
using test::writeHostFile;

using Fill = kj::Function<void(rpc::ToolInvocation::Builder)>;

kj::Promise<capnp::Response<rpc::ToolWorker::RunResults>> send(TestWorker& worker, Fill fill,
                                                               std::string& streamed, bool& ended) {
  auto request = worker.worker.runRequest();
  fill(request.initInvocation());
  request.setOutput(kj::heap<CollectingSink>(streamed, ended));
  return request.send();
}

CallResult call(kj::AsyncIoContext& io, TestWorker& worker, Fill fill) {
  std::string streamed;
  bool ended = false;
  auto response = send(worker, kj::mv(fill), streamed, ended).wait(io.waitScope);
  return test::toCallResult(response.getResult());
}

// The description of the exception the call failed with, or "" if it succeeded.
std::string callError(kj::AsyncIoContext& io, TestWorker& worker, Fill fill) {
  std::string streamed;
  bool ended = false;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions(
                      [&]() { send(worker, kj::mv(fill), streamed, ended).wait(io.waitScope); })) {
    return e->getDescription().cStr();
  }
  return "";
}

Fill readPath(const char* path) {
  return [path](rpc::ToolInvocation::Builder b) { b.initRead().setPath(path); };
}

TEST_CASE("read worker: returns the file's text, then exits by itself") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  writeHostFile(ws / "hello.txt", "hello from the workspace\n");
  TestWorker worker(io, "CHITIN_WORKER_READ", ws.path());
  auto r = call(io, worker, readPath("/workspace/hello.txt"));
  CHECK_FALSE(r.failed);
  CHECK(r.text == "hello from the workspace\n");
  CHECK(r.exitCode == -1);
  // The worker ends after its one call even though we keep the connection open.
  auto status = worker.waitForExit(10 * 1000);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("read worker: a missing file and an escaping symlink are failed results") {
  auto io = kj::setupAsyncIo();
  TempDir ws, outside;
  writeHostFile(outside / "secret", "secret\n");
  REQUIRE(symlink((outside / "secret").c_str(), (ws / "link").c_str()) == 0);
  {
    TestWorker worker(io, "CHITIN_WORKER_READ", ws.path());
    auto r = call(io, worker, readPath("missing.md"));
    CHECK(r.failed);
    CHECK(r.text == "file not found: \"missing.md\"");
  }
  {
    TestWorker worker(io, "CHITIN_WORKER_READ", ws.path());
    auto r = call(io, worker, readPath("link"));
    CHECK(r.failed);
    CHECK(has(r.text, "path escapes the workspace"));
  }
}

TEST_CASE("write worker: writes the file and reports the bytes") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  TestWorker worker(io, "CHITIN_WORKER_WRITE", ws.path());
  auto r = call(io, worker, [](rpc::ToolInvocation::Builder b) {
    auto w = b.initWrite();
    w.setPath("memory/2025-01-01.md");
    w.setContent("# Today\n");
  });
  CHECK_FALSE(r.failed);
  CHECK(r.text == "wrote 8 bytes to \"memory/2025-01-01.md\"");
  CHECK(readHostFile(ws / "memory/2025-01-01.md") == "# Today\n");
}

TEST_CASE("write worker: a path leaving the workspace is a failed result, nothing written") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  TestWorker worker(io, "CHITIN_WORKER_WRITE", ws.path());
  auto r = call(io, worker, [](rpc::ToolInvocation::Builder b) {
    auto w = b.initWrite();
    w.setPath("../escaped.txt");
    w.setContent("x");
  });
  CHECK(r.failed);
  CHECK(r.text == "path escapes the workspace: \"../escaped.txt\"");
  CHECK(readHostFile(ws.path() + "/../escaped.txt") == "<missing>");
}

TEST_CASE("edit worker: replaces the text; an ambiguous edit fails and changes nothing") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  writeHostFile(ws / "SOUL.md", "tone: formal\nlang: en\n");
  {
    TestWorker worker(io, "CHITIN_WORKER_EDIT", ws.path());
    auto r = call(io, worker, [](rpc::ToolInvocation::Builder b) {
      auto e = b.initEdit();
      e.setPath("SOUL.md");
      e.setOldText("formal");
      e.setNewText("casual");
    });
    CHECK_FALSE(r.failed);
    CHECK(readHostFile(ws / "SOUL.md") == "tone: casual\nlang: en\n");
  }
  {
    TestWorker worker(io, "CHITIN_WORKER_EDIT", ws.path());
    auto r = call(io, worker, [](rpc::ToolInvocation::Builder b) {
      auto e = b.initEdit();
      e.setPath("SOUL.md");
      e.setOldText(": ");
      e.setNewText("=");
    });
    CHECK(r.failed);
    CHECK(r.text == "oldText occurs 2 times in \"SOUL.md\"; include more context");
    CHECK(readHostFile(ws / "SOUL.md") == "tone: casual\nlang: en\n");
  }
  {
    TestWorker worker(io, "CHITIN_WORKER_EDIT", ws.path());
    auto r = call(io, worker, [](rpc::ToolInvocation::Builder b) {
      auto e = b.initEdit();
      e.setPath("SOUL.md");
      e.setOldText("absent");
      e.setNewText("x");
    });
    CHECK(r.failed);
    CHECK(r.text == "oldText not found in \"SOUL.md\"");
  }
}

TEST_CASE("file workers: a second run() is a protocol error") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  writeHostFile(ws / "a.txt", "a\n");
  TestWorker worker(io, "CHITIN_WORKER_READ", ws.path());
  CHECK_FALSE(call(io, worker, readPath("a.txt")).failed);
  auto error = callError(io, worker, readPath("a.txt"));
  CHECK(has(error, "ToolWorker.run called twice"));
}

TEST_CASE("file workers: an invocation of another kind is a protocol error, not an action") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  {
    TestWorker worker(io, "CHITIN_WORKER_READ", ws.path());
    auto error = callError(io, worker, [](rpc::ToolInvocation::Builder b) {
      auto w = b.initWrite();
      w.setPath("planted.txt");
      w.setContent("x");
    });
    CHECK(has(error, "tool worker got an invocation of another kind"));
  }
  {
    TestWorker worker(io, "CHITIN_WORKER_WRITE", ws.path());
    auto error = callError(io, worker, [](rpc::ToolInvocation::Builder b) {
      b.initExec().setCommand("touch planted.txt");
    });
    CHECK(has(error, "another kind"));
  }
  CHECK(readHostFile(ws / "planted.txt") == "<missing>");
}

TEST_CASE("file workers: without the limits flag the worker refuses to start") {
  auto io = kj::setupAsyncIo();
  TempDir ws;
  const char* binary = getenv("CHITIN_WORKER_READ");
  REQUIRE(binary != nullptr);
  pid_t pid;
  std::string rootFlag = "--workspace-root=" + ws.path();
  char* argv[] = {const_cast<char*>(binary), rootFlag.data(), nullptr};
  REQUIRE(posix_spawn(&pid, binary, nullptr, nullptr, argv, environ) == 0);
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 70);
}

}  // namespace
}  // namespace chitin
