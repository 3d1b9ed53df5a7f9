// SPDX-License-Identifier: Apache-2.0
#include "proc-stat.h"

#include <doctest/doctest.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace chitin::spawn {
namespace {

// A stat file with these contents, in a directory of its own, removed with it.
struct StatFile {
  std::string dir;
  std::string path;
  explicit StatFile(const std::string& contents) {
    char tmpl[] = "/tmp/chitin-proc-stat-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/stat";
    std::ofstream(path) << contents;
  }
  ~StatFile() {
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
};

TEST_CASE("proc-stat: the parent of this process and of its child, as /proc gives them") {
  CHECK(parentInProcStat("/proc/self/stat") == getppid());
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  std::string path = "/proc/" + std::to_string(child) + "/stat";
  CHECK(parentInProcStat(path.c_str()) == getpid());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST_CASE("proc-stat: a name holding spaces and parentheses ends at the last ')'") {
  StatFile stat("4242 (a) S 1 (b) R 77 4242 4242 0 -1 4194560 0 0\n");
  CHECK(parentInProcStat(stat.path.c_str()) == 77);
}

TEST_CASE("proc-stat: what is not a stat line is EINVAL, a missing file its own errno") {
  for (const char* contents : {"", "4242 (name", "4242 (name) S\n", "4242 (name) S x 1\n",
                               "4242 (name)S 77 1\n", "4242 (name) S 123456789012 1\n"}) {
    CAPTURE(contents);
    StatFile stat(contents);
    errno = 0;
    CHECK(parentInProcStat(stat.path.c_str()) == -1);
    CHECK(errno == EINVAL);
  }
  errno = 0;
  CHECK(parentInProcStat("/nonexistent/chitin/stat") == -1);
  CHECK(errno == ENOENT);
}

}  // namespace
}  // namespace chitin::spawn
