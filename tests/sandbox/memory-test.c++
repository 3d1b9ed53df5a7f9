// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about the memory worker (sandbox-profiles/memory.textproto): from inside a
// worker spawned from the shipped `memory` profile with the memory lockdown, the workspace is
// read-only, there is no network, and nothing outside the workspace and the agent's own memory
// state directory exists (not the supervisor's config, not another agent's index). Each denial
// is paired with a control that succeeds without the restriction; and the real
// chitin-worker-memory, under the same profile, builds its index in the state directory and
// answers (the grant the profile exists for).
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "memory-cli.h"
#include "probe-runner.h"

namespace chitin::testing {

namespace {

const char CONFIG[] = "agent { id: \"main\" }\n";
const char NOTE[] = "# Memory\nThe user prefers tea.\n";

// A $CHITIN_HOME as on a real server: the config, this agent's workspace and memory state, and
// another agent's memory state beside it.
struct MemoryHost {
  TempDir home{"chitin-home"};
  std::string config, ownState, otherIndex, workspace;
  MemoryHost() {
    config = home.file("chitin.conf", CONFIG);
    for (const char* dir : {"/workspace", "/workspace/main", "/workspace/main/memory", "/state",
                            "/state/memory", "/state/memory/main", "/state/memory/other"})
      REQUIRE(mkdir((home.path() + dir).c_str(), 0700) == 0);
    workspace = home.path() + "/workspace/main";
    home.file("workspace/main/MEMORY.md", NOTE);
    ownState = home.path() + "/state/memory/main";
    otherIndex = home.file("state/memory/other/index.sqlite", "another agent's index\n");
  }
  std::map<std::string, std::string> vars() const {
    return {{"WORKSPACE", workspace}, {"STATE_DIR", ownState}};
  }
  ProbeRun probe(const std::string& name, const std::vector<std::string>& args) const {
    return runProbe({"memory", "memory", name, args, vars()});
  }
};

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

std::string contentOf(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("memory profile: the workspace is read-only (EROFS); the state directory is writable") {
  MemoryHost host;
  auto write = host.probe("write", {"/workspace/MEMORY.md"});
  CHECK(write.result == "errno=EROFS");
  CHECK(write.exit.describe() == "exited with status 0");
  auto create = host.probe("write", {"/workspace/memory/new.md"});
  CHECK(create.result == "errno=EROFS");
  CHECK(contentOf(host.workspace + "/MEMORY.md") == NOTE);
  CHECK(access((host.workspace + "/memory/new.md").c_str(), F_OK) != 0);
  // Controls: the same worker reads the workspace and writes its own state directory, and the
  // same probe outside the sandbox writes the same workspace file (so EROFS is the mount's).
  CHECK(host.probe("read", {"/workspace/MEMORY.md"}).result ==
        "ok bytes=31 text=# Memory\\x0aThe user prefers tea.\\x0a");
  CHECK(host.probe("write", {"/state/probe.txt"}).result == "ok");
  CHECK(contentOf(host.ownState + "/probe.txt") == "probe\n");
  std::string copy = host.home.file("workspace/main/memory/copy.md", "x\n");
  CHECK(runUnsandboxed("write", {copy}).result == "ok");
}

TEST_CASE("memory profile: connect() to a 127.0.0.1 listener kills the worker (SIGSYS)") {
  MemoryHost host;
  TcpListener listener;
  std::vector<std::string> target{"127.0.0.1", std::to_string(listener.port)};
  auto inside = host.probe("connect", target);
  CHECK(inside.result == "");
  CHECK(inside.exit.describe() == "killed by signal 31 (SIGSYS)");
  auto udp = host.probe("socket-udp", {});
  CHECK(udp.exit.describe() == "killed by signal 31 (SIGSYS)");
  // Control: the same probe outside any sandbox connects.
  CHECK(runUnsandboxed("connect", target).result == "ok");
}

TEST_CASE(
    "memory profile: the supervisor's config and another agent's index do not exist inside "
    "(ENOENT)") {
  MemoryHost host;
  CHECK(host.probe("read", {host.config}).result == "errno=ENOENT");
  CHECK(host.probe("read", {host.otherIndex}).result == "errno=ENOENT");
  CHECK(host.probe("read", {"/state/../other/index.sqlite"}).result == "errno=ENOENT");
  CHECK(host.probe("read", {"/workspace/../../chitin.conf"}).result == "errno=ENOENT");
  // Controls: outside the sandbox the same user reads both; inside, its own state is there.
  CHECK(startsWith(runUnsandboxed("read", {host.config}).result, "ok bytes="));
  CHECK(startsWith(runUnsandboxed("read", {host.otherIndex}).result, "ok bytes="));
  host.home.file("state/memory/main/own.txt", "own\n");
  CHECK(host.probe("read", {"/state/own.txt"}).result == "ok bytes=4 text=own\\x0a");
}

TEST_CASE("memory worker: under its shipped profile it indexes into /state and answers") {
  MemoryHost host;
  memory::MemoryCliRequest request;
  request.command = memory::MemoryCommand::SEARCH;
  request.query = "tea";
  auto outcome =
      memory::runMemoryWorker(testSpawner().settings(), request, host.workspace, host.ownState);
  REQUIRE(outcome.status == ToolOutcome::Status::OK);
  CHECK(outcome.content.find("\"path\":\"MEMORY.md\"") != std::string::npos);
  CHECK(outcome.content.find("**tea**") != std::string::npos);
  struct stat st;
  CHECK(stat((host.ownState + "/index.sqlite").c_str(), &st) == 0);
  CHECK(contentOf(host.otherIndex) == "another agent's index\n");
  CHECK(contentOf(host.workspace + "/MEMORY.md") == NOTE);
}

}  // namespace chitin::testing
