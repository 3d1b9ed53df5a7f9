// SPDX-License-Identifier: Apache-2.0
// The real exec worker binary, started unsandboxed against a temporary workspace and driven
// over Cap'n Proto as the supervisor drives it.
// Runs in: test

#include <kj/function.h>
#include <time.h>

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

// Runs one command in a fresh worker over `ws`, with a fresh HOME as the sandbox gives it.
CallResult runOnce(const TempDir& ws, const ExecCall& args, Streamed& streamed,
                   std::vector<std::string> flags = {}) {
  auto io = kj::setupAsyncIo();
  TempDir home;
  flags.push_back("--home=" + home.path());
  TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path(), kj::mv(flags));
  return run(io, worker, args, streamed);
}

// The environment every command gets besides PATH, HOME, LANG and TERM: git pinned.
std::string gitEnvironment(const std::string& text) {
  std::string out;
  size_t pos = 0;
  while ((pos = text.find("\nGIT_", pos)) != std::string::npos) {
    size_t end = text.find('\n', pos + 1);
    out += text.substr(pos + 1, end - pos - 1) + "\n";
    pos = end;
  }
  return out;
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

// The worker's bash waiting for its command (WarmShell), once it has started: its pid, or -1
// when none appears within `timeoutMs`.
pid_t warmShellOf(pid_t worker, int timeoutMs) {
  for (int waited = 0; waited <= timeoutMs; waited += 10) {
    std::string children = readHostFile("/proc/" + std::to_string(worker) + "/task/" +
                                        std::to_string(worker) + "/children");
    size_t at = 0;
    while (at < children.size() && children != "<missing>") {
      size_t end = children.find(' ', at);
      if (end == std::string::npos) end = children.size();
      std::string pid = children.substr(at, end - at);
      if (!pid.empty() && has(readHostFile("/proc/" + pid + "/cmdline"), "__chitin_command")) {
        return static_cast<pid_t>(std::stol(pid));
      }
      at = end + 1;
    }
    usleep(10 * 1000);
  }
  return -1;
}

// `text` without its first line.
std::string afterFirstLine(const std::string& text) {
  size_t newline = text.find('\n');
  return newline == std::string::npos ? std::string() : text.substr(newline + 1);
}

TEST_CASE("exec worker: a call runs in the bash started ahead of it, which leaves no trace") {
  TempDir ws;
  auto io = kj::setupAsyncIo();
  TempDir home;
  // What the command can see of how it was started: its variables, its clock, its fds, its
  // seccomp filters (started before the worker's lockdown, it would have one filter fewer).
  const std::string probe =
      "echo $$; echo ${__chitin_go-unset} ${__chitin_command-unset} $SECONDS $0 $PWD; "
      "ls /proc/self/fd | tr '\\n' ' '; echo; grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' "
      "/proc/self/status; awk '{print \"leads its session:\", $1 == $5 && $1 == $6}' "
      "/proc/$$/stat; exit 7";
  std::string warmOutput;
  {
    TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path(), {"--home=" + home.path()});
    pid_t shell = warmShellOf(worker.pid, 5000);
    REQUIRE(shell > 0);
    usleep(1100 * 1000);  // $SECONDS counts from the call, not from the shell's start
    Streamed streamed;
    auto r = run(io, worker, {probe}, streamed);
    CHECK(r.exitCode == 7);
    CHECK(r.text.substr(0, r.text.find('\n')) == std::to_string(shell));
    warmOutput = afterFirstLine(r.text);
    INFO(warmOutput);
    CHECK(has(warmOutput, "unset unset 0 /bin/bash " + ws.path() + "\n0 1 2 3 \n"));
    CHECK(has(warmOutput, "Seccomp:\t2\n"));
    CHECK(has(warmOutput, "leads its session: 1\n"));
  }
  // The same command in a bash started for the call (a workdir, even ".", asks for one).
  TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path(), {"--home=" + home.path()});
  pid_t shell = warmShellOf(worker.pid, 5000);
  Streamed streamed;
  auto r = run(io, worker, {probe, "."}, streamed);
  CHECK(r.text.substr(0, r.text.find('\n')) != std::to_string(shell));
  CHECK(afterFirstLine(r.text) == warmOutput);
  // Not handed the call, the warm shell ends with it.
  for (int waited = 0; waited < 2000 && !processGone(shell); waited += 10) usleep(10 * 1000);
  CHECK(processGone(shell));
}

TEST_CASE("exec worker: a warm shell that has gone is not used: the call starts bash") {
  TempDir ws;
  auto io = kj::setupAsyncIo();
  TestWorker worker(io, "CHITIN_WORKER_EXEC", ws.path());
  pid_t shell = warmShellOf(worker.pid, 5000);
  REQUIRE(shell > 0);
  REQUIRE(kill(shell, SIGKILL) == 0);
  for (int waited = 0; waited < 2000 && !processGone(shell); waited += 10) usleep(10 * 1000);
  Streamed streamed;
  auto r = run(io, worker, {"echo $$ ran"}, streamed);
  CHECK_FALSE(r.failed);
  CHECK(has(r.text, " ran\n"));
  CHECK(r.text != std::to_string(shell) + " ran\n");
}

TEST_CASE("exec worker: a syntax error fails the call as it does in `bash -c`") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"echo never; if"}, streamed);
  CHECK(r.exitCode == 2);
  CHECK_FALSE(has(r.text, "never"));
  CHECK(has(r.text, "syntax error"));
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

TEST_CASE("exec worker: runs in the workdir with only PATH, HOME, LANG, TERM, git's and no stdin") {
  TempDir ws;
  mkdir((ws / "sub").c_str(), 0755);
  setenv("CHITIN_TEST_LEAK", "should-not-pass", 1);
  Streamed streamed;
  auto r = runOnce(ws,
                   {"pwd; env | grep -v -E '^(PWD|SHLVL|_|GIT_.*)=' | sed 's/^HOME=.*/HOME=/'"
                    " | sort; cat; echo stdin-done",
                    "/workspace/sub"},
                   streamed);
  unsetenv("CHITIN_TEST_LEAK");
  CHECK_FALSE(r.failed);
  CHECK(r.text == ws.path() + "/sub\n" +
                      "HOME=\nLANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin\nTERM=dumb\n"
                      "stdin-done\n");
}

TEST_CASE("exec worker: HOME is not the workspace, and git reads no system or global config") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"echo $HOME; ls -A ~ | wc -l; env | grep ^GIT_ | sort"}, streamed);
  CHECK_FALSE(r.failed);
  CHECK(r.text.find(ws.path()) == std::string::npos);
  CHECK(r.text.find("\n0\n") != std::string::npos);  // empty, every call
  std::string git = gitEnvironment("\n" + r.text);
  CHECK(git.find("GIT_CONFIG_NOSYSTEM=1\n") != std::string::npos);
  CHECK(git.find("GIT_CONFIG_GLOBAL=/dev/null\n") != std::string::npos);
  for (const char* key : {"core.fsmonitor", "core.hooksPath", "core.pager", "core.editor",
                          "core.sshCommand", "credential.helper", "protocol.allow",
                          "protocol.ext.allow", "protocol.file.allow", "gpg.program"}) {
    CAPTURE(key);
    CHECK(git.find(std::string("=") + key + "\n") != std::string::npos);
  }
}

TEST_CASE(
    "exec worker: a planted .pth in the workspace's ~/.local has no effect; with "
    "HOME=workspace it would run") {
  TempDir ws;
  mkdir((ws / ".local").c_str(), 0755);
  Streamed s1, s2, s3;
  // An earlier call plants the file where a HOME=/workspace would have put it.
  auto plant = runOnce(ws,
                       {"d=$(python3 -c 'import site,sys; print(site.getusersitepackages()"
                        ".replace(site.getuserbase(), \"\"))'); mkdir -p \"$PWD/.local$d\" && "
                        "echo 'import os; open(\"'$PWD'/pwned-pth\", \"w\")' > "
                        "\"$PWD/.local$d/evil.pth\" && echo planted"},
                       s1);
  REQUIRE(plant.text == "planted\n");
  auto later = runOnce(ws, {"python3 -c pass && echo ran"}, s2);
  CHECK(later.text == "ran\n");
  CHECK(readHostFile(ws / "pwned-pth") == "<missing>");
  // Control: the same harmless command with HOME at the workspace (as before) runs it.
  auto control = runOnce(ws, {"HOME=$PWD python3 -c pass && echo ran"}, s3);
  CHECK(control.text == "ran\n");
  CHECK(readHostFile(ws / "pwned-pth") == "");
}

TEST_CASE(
    "exec worker: a planted core.fsmonitor in .git/config does not run on git status; "
    "without the pinned config it would") {
  TempDir ws;
  Streamed s1, s2, s3;
  auto init = runOnce(ws,
                      {"git init -q repo && printf '[core]\\n\\tfsmonitor = touch "
                       "'$PWD'/pwned-git\\n' >> repo/.git/config && echo planted"},
                      s1);
  REQUIRE(init.text == "planted\n");
  auto later = runOnce(ws, {"git status --short && echo status-ok", "repo"}, s2);
  CHECK(later.text == "status-ok\n");
  CHECK(readHostFile(ws / "pwned-git") == "<missing>");
  // Control: the same `git status` without the pinned settings runs the planted command.
  auto control =
      runOnce(ws, {"env -u GIT_CONFIG_COUNT git status --short && echo status-ok", "repo"}, s3);
  CHECK(control.text.find("status-ok") != std::string::npos);
  CHECK(readHostFile(ws / "pwned-git") == "");
}

TEST_CASE("exec worker: planted hooks and a credential helper do not run") {
  TempDir ws;
  Streamed s1, s2;
  auto init = runOnce(
      ws,
      {"git init -q repo && cd repo && printf '#!/bin/sh\\ntouch '$PWD'/../pwned-hook\\n' > "
       ".git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && git config user.email a@b && "
       "git config user.name a && git config core.pager 'touch '$PWD'/../pwned-pager' && "
       "echo x > f && git add f && echo planted"},
      s1);
  REQUIRE(init.text == "planted\n");
  auto later = runOnce(ws, {"git commit -qm one && git log --oneline | wc -l", "repo"}, s2);
  CHECK(later.text == "1\n");
  CHECK(readHostFile(ws / "pwned-hook") == "<missing>");
  CHECK(readHostFile(ws / "pwned-pager") == "<missing>");
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

TEST_CASE("exec worker: output beyond --max-output-bytes is cut in the result and the stream") {
  TempDir ws;
  Streamed streamed;
  auto r =
      runOnce(ws, {"head -c 5000 /dev/zero | tr '\\0' x"}, streamed, {"--max-output-bytes=1000"});
  CHECK_FALSE(r.failed);
  CHECK(r.truncated);
  CHECK(r.text == std::string(1000, 'x') + "\n[output truncated: 5000 bytes total]");
  CHECK(streamed.bytes == std::string(1000, 'x'));
  CHECK(streamed.ended);
}

TEST_CASE("exec worker: the default cap is 64 KiB; the command runs to its end") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"head -c 3000000 /dev/zero | tr '\\0' y; exit 1"}, streamed);
  CHECK(r.failed);
  CHECK(r.truncated);
  CHECK(r.exitCode == 1);
  CHECK(r.text ==
        std::string(65536, 'y') + "\n[output truncated: 3000000 bytes total]\nexit code 1");
  CHECK(streamed.bytes.size() == 65536);
}

TEST_CASE(
    "exec worker: a command whose output runs away is killed at 64 MiB, long before its "
    "timeout") {
  TempDir ws;
  Streamed streamed;
  double start = nowSeconds();
  auto r = runOnce(ws, {"cat /dev/zero; echo not-reached", "", 3600}, streamed);
  double elapsed = nowSeconds() - start;
  CHECK(r.failed);
  CHECK_FALSE(r.timedOut);
  CHECK(r.exitCode == -1);
  CHECK(r.text.size() < 65536 + 400);
  CHECK(r.text.find("\n[output truncated] the command was killed: it wrote more than 64 MiB of "
                    "output (write large output to a file and read parts of it)") !=
        std::string::npos);
  CHECK(streamed.bytes.size() == 65536);
  CHECK(elapsed < 20);
  MESSAGE("cat /dev/zero stopped after ", elapsed, " s");
  // Control: the same amount written to a file is an ordinary command.
  Streamed quiet;
  auto control = runOnce(ws, {"head -c 70000000 /dev/zero > big; stat -c %s big; rm big"}, quiet);
  CHECK(control.text == "70000000\n");
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

TEST_CASE("exec worker: NUL bytes reach the model as U+FFFD within the cap; status lines stay") {
  TempDir ws;
  Streamed streamed;
  auto r = runOnce(ws, {"head -c 2000 /dev/zero; exit 4"}, streamed, {"--max-output-bytes=1000"});
  std::string replacement = "\xef\xbf\xbd";
  std::string kept;
  for (int i = 0; i < 333; i++) kept += replacement;  // 999 bytes: the cap, on a boundary
  CHECK(r.text == kept + "\n[output truncated: 2000 bytes total]\nexit code 4");
  CHECK(streamed.bytes == std::string(1000, '\0'));  // the stream carries the raw bytes
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
      CHECK(has(e->getDescription().cStr(), "ToolWorker.run called twice"));
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
      CHECK(has(e->getDescription().cStr(), "timeoutSeconds above the maximum"));
    } else {
      FAIL("timeoutSeconds 3601 accepted");
    }
    CHECK(readHostFile(ws / "ran") == "<missing>");
  }
}

}  // namespace
}  // namespace chitin
