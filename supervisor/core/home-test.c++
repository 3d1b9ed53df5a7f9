// SPDX-License-Identifier: Apache-2.0
// Tests for $CHITIN_HOME layout and the gateway token.
// Runs in: test

#include "home.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace chitin {
namespace {

struct TempHome {
  std::string root;
  TempHome() {
    char tmpl[] = "/tmp/chitin-home-XXXXXX";
    root = mkdtemp(tmpl);
  }
  ~TempHome() { std::system(("rm -rf '" + root + "'").c_str()); }
};

mode_t modeOf(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

TEST_CASE("home: the layout is created private to the service user") {
  TempHome t;
  HomeLayout home{t.root + "/h"};
  ensureHomeLayout(home, "main");
  CHECK(modeOf(home.root) == 0700);
  CHECK(modeOf(home.sessionsDir()) == 0700);
  CHECK(modeOf(home.workspaceDir("main")) == 0700);
  ensureHomeLayout(home, "main");  // idempotent
}

TEST_CASE("home: a file where a directory belongs is an error naming it") {
  TempHome t;
  HomeLayout home{t.root};
  std::ofstream(t.root + "/state") << "x";
  CHECK_THROWS_WITH(ensureHomeLayout(home, "main"), doctest::Contains((t.root + "/state").c_str()));
}

TEST_CASE("home: the token is generated once, 64 hex characters, mode 0600") {
  TempHome t;
  HomeLayout home{t.root};
  std::string token = loadOrCreateToken(home);
  CHECK(token.size() == 64);
  CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(modeOf(home.tokenPath()) == 0600);
  CHECK(loadOrCreateToken(home) == token);
  TempHome other;
  CHECK(loadOrCreateToken(HomeLayout{other.root}) != token);
}

TEST_CASE("home: a token readable by others is refused, not used") {
  TempHome t;
  HomeLayout home{t.root};
  loadOrCreateToken(home);
  REQUIRE(chmod(home.tokenPath().c_str(), 0644) == 0);
  CHECK_THROWS_WITH(loadOrCreateToken(home),
                    doctest::Contains("readable by group or others (mode 644)"));
}

TEST_CASE("home: a short token file is refused") {
  TempHome t;
  HomeLayout home{t.root};
  int fd = open(home.tokenPath().c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(write(fd, "short\n", 6) == 6);
  close(fd);
  CHECK_THROWS_WITH(loadOrCreateToken(home), doctest::Contains("shorter than 32"));
}

TEST_CASE("home: gateway.url is written whole") {
  TempHome t;
  HomeLayout home{t.root};
  writeGatewayUrl(home, "ws://127.0.0.1:1234");
  std::ifstream in(home.urlPath());
  std::string line;
  std::getline(in, line);
  CHECK(line == "ws://127.0.0.1:1234");
}

TEST_CASE("home: CHITIN_HOME wins over the service user's home") {
  setenv("CHITIN_HOME", "/srv/chitin", 1);
  CHECK(defaultHomePath("/home/svc") == "/srv/chitin");
  unsetenv("CHITIN_HOME");
  CHECK(defaultHomePath("/home/svc") == "/home/svc/.chitin");
}

TEST_CASE("home: --user names must exist and must not be root") {
  CHECK_THROWS_WITH(lookupServiceUser("no-such-user-chitin"), doctest::Contains("no such user"));
  CHECK_THROWS_WITH(lookupServiceUser("root"), doctest::Contains("uid 0"));
}

}  // namespace
}  // namespace chitin
