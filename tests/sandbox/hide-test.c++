// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about hidden directories (SpawnRequest::hide): a directory of the workspace
// the supervisor hides is an empty read-only directory to the worker, its files invisible and
// untouched; and a worker whose hidden path is not that cover refuses to start.
// Runs in: tests (probes run in real sandboxes, or directly for start-up checks)

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

struct Workspace {
  TempDir dir{"chitin-ws"};
  Workspace() {
    REQUIRE(mkdir((dir.path() + "/downloads").c_str(), 0755) == 0);
    dir.file("downloads/page.html", "injected\n");
    dir.file("notes.md", "mine\n");
  }
  std::map<std::string, std::string> vars() const { return {{"WORKSPACE", dir.path()}}; }
};

}  // namespace

TEST_CASE("exec profile: a hidden directory's files are invisible (ENOENT); visible without") {
  Workspace ws;
  ProbeSpec hidden{"exec", "exec", "read", {"/workspace/downloads/page.html"}, ws.vars()};
  hidden.hide = {"/workspace/downloads"};
  CHECK(runProbe(hidden).result == "errno=ENOENT");
  // Through a symlink the model could have made, too: it resolves to the covered directory.
  REQUIRE(symlink("downloads", (ws.dir.path() + "/dl").c_str()) == 0);
  hidden.args = {"/workspace/dl/page.html"};
  CHECK(runProbe(hidden).result == "errno=ENOENT");
  // Control: the same probe without the request reads the file.
  auto visible = runProbe({"exec", "exec", "read", {"/workspace/downloads/page.html"}, ws.vars()});
  CHECK(visible.result == "ok bytes=9 text=injected\\x0a");
  // The rest of the workspace stays as it was.
  ProbeSpec notes{"exec", "exec", "read", {"/workspace/notes.md"}, ws.vars()};
  notes.hide = {"/workspace/downloads"};
  CHECK(runProbe(notes).result == "ok bytes=5 text=mine\\x0a");
}

TEST_CASE("exec profile: a hidden directory is empty and read-only; the host's is untouched") {
  Workspace ws;
  ProbeSpec spec{"exec",
                 "exec",
                 "bash-out",
                 {"ls -A /workspace/downloads | wc -l; touch /workspace/downloads/new; "
                  "rm -f /workspace/downloads/page.html; stat -c %a /workspace/downloads"},
                 ws.vars()};
  spec.hide = {"/workspace/downloads"};
  auto run = runProbe(spec);
  CHECK(run.result.find("out=0|") != std::string::npos);
  CHECK(run.result.find("cannot touch '/workspace/downloads/new': Read-only file system") !=
        std::string::npos);
  CHECK(run.result.find("|555|") != std::string::npos);
  CHECK(access((ws.dir.path() + "/downloads/page.html").c_str(), F_OK) == 0);
  CHECK(access((ws.dir.path() + "/downloads/new").c_str(), F_OK) != 0);
  // Control: without the request the same commands change the host directory.
  spec.hide.clear();
  auto open = runProbe(spec);
  CHECK(open.result.find("out=1|") != std::string::npos);
  CHECK(access((ws.dir.path() + "/downloads/new").c_str(), F_OK) == 0);
  CHECK(access((ws.dir.path() + "/downloads/page.html").c_str(), F_OK) != 0);
}

TEST_CASE("spawner: hiding a symlink or a missing directory refuses the spawn, creating nothing") {
  Workspace ws;
  REQUIRE(symlink("downloads", (ws.dir.path() + "/dl").c_str()) == 0);
  for (const char* path : {"/workspace/dl", "/workspace/missing", "/workspace/notes.md"}) {
    CAPTURE(path);
    ProbeSpec spec{"exec", "exec", "noop", {}, ws.vars()};
    spec.hide = {path};
    CHECK_THROWS_AS(startProbe(spec), spawn::SandboxUnavailable);
  }
  CHECK(access((ws.dir.path() + "/missing").c_str(), F_OK) != 0);
}

TEST_CASE("worker start-up: a hidden path that is not an empty read-only tmpfs stops it (70)") {
  TempDir plain("chitin-hidden");
  // Control: the same start-up without the flag runs the probe.
  CHECK(runDirect({GOOD_LIMITS, "--probe-kind=exec", "--probe=noop"}).result == "ok");
  // A plain host directory (as if bwrap had covered another place), and a symlink to it.
  REQUIRE(symlink(plain.path().c_str(), (plain.path() + "-link").c_str()) == 0);
  for (const std::string& path : {plain.path(), plain.path() + "-link"}) {
    CAPTURE(path);
    auto bad =
        runDirect({GOOD_LIMITS, "--chitin-hidden=" + path, "--probe-kind=exec", "--probe=noop"});
    CHECK(bad.result == "worker start-up failed with status 70");
  }
  unlink((plain.path() + "-link").c_str());
}

}  // namespace chitin::testing
