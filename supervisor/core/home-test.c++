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
#include <vector>

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
  writeGatewayUrl(home, "ws://127.0.0.1:5678");  // a restart replaces it
  std::ifstream in(home.urlPath());
  std::string line;
  std::getline(in, line);
  CHECK(line == "ws://127.0.0.1:5678");
  struct stat st;
  REQUIRE(stat(home.urlPath().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  CHECK(access((home.urlPath() + ".tmp").c_str(), F_OK) != 0);  // renamed, not left behind
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

struct timespec ctimeOf(const std::string& path) {
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st.st_ctim;
}

bool same(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

TEST_CASE("home: handing a tree over changes nothing that already has the owner, at any depth") {
  TempHome t;
  std::string dir = t.root + "/workspace";
  REQUIRE(mkdir(dir.c_str(), 0700) == 0);
  std::ofstream(dir + "/note.md") << "kept\n";
  REQUIRE(symlink("/etc/hostname", (dir + "/link").c_str()) == 0);
  // Deeper than PATH_MAX: made and walked relative to each directory.
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  std::string name(200, 'd');
  for (int i = 0; i < 30; ++i) {
    REQUIRE(mkdirat(fd, name.c_str(), 0700) == 0);
    int next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(next >= 0);
    close(fd);
    fd = next;
  }
  int deep = openat(fd, "bottom.md", O_WRONLY | O_CREAT, 0600);
  REQUIRE(deep >= 0);
  close(deep);
  struct stat bottom;
  REQUIRE(fstatat(fd, "bottom.md", &bottom, 0) == 0);
  auto before = std::vector<struct timespec>{ctimeOf(t.root), ctimeOf(dir),
                                             ctimeOf(dir + "/note.md"), ctimeOf(dir + "/link")};
  usleep(20000);  // a change now would show in the ctime
  handTreeTo(t.root, getuid(), getgid());
  auto after = std::vector<struct timespec>{ctimeOf(t.root), ctimeOf(dir),
                                            ctimeOf(dir + "/note.md"), ctimeOf(dir + "/link")};
  for (size_t i = 0; i < before.size(); ++i) CHECK(same(before[i], after[i]));
  struct stat bottomAfter;
  REQUIRE(fstatat(fd, "bottom.md", &bottomAfter, 0) == 0);
  CHECK(same(bottom.st_ctim, bottomAfter.st_ctim));
  close(fd);
}

TEST_CASE(
    "home: handing a tree over gives root's files to the user, a symlink but not its target") {
  if (geteuid() != 0) return;  // only root can give a file away
  TempHome t;
  TempHome outside;
  std::string target = outside.root + "/root-owned";
  std::ofstream(target) << "not chitin's\n";
  std::string sub = t.root + "/state";
  REQUIRE(mkdir(sub.c_str(), 0700) == 0);
  std::ofstream(sub + "/transcript.jsonl") << "{}\n";
  REQUIRE(symlink(target.c_str(), (sub + "/escape").c_str()) == 0);
  const uid_t uid = 65534;
  const gid_t gid = 65534;
  handTreeTo(t.root, uid, gid);
  for (std::string path : {t.root, sub, sub + "/transcript.jsonl", sub + "/escape"}) {
    struct stat st;
    REQUIRE(lstat(path.c_str(), &st) == 0);
    CHECK_MESSAGE(st.st_uid == uid, path);
    CHECK_MESSAGE(st.st_gid == gid, path);
  }
  struct stat st;
  REQUIRE(stat(target.c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
}

TEST_CASE("home: handing a tree over stops descending at its depth bound, and goes on") {
  if (geteuid() != 0) return;  // only root can give a file away
  TempHome t;
  int fd = open(t.root.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  int shallow = -1;
  for (size_t i = 0; i < MAX_HAND_DEPTH + 5; ++i) {
    REQUIRE(mkdirat(fd, "d", 0700) == 0);
    int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
    REQUIRE(next >= 0);
    if (i == 10) shallow = dup(next);
    close(fd);
    fd = next;
  }
  for (int dir : {shallow, fd}) close(openat(dir, "f", O_WRONLY | O_CREAT, 0600));
  handTreeTo(t.root, 65534, 65534);
  struct stat st;
  REQUIRE(fstatat(shallow, "f", &st, 0) == 0);
  CHECK(st.st_uid == 65534);
  REQUIRE(fstatat(fd, "f", &st, 0) == 0);
  CHECK(st.st_uid == 0);  // below the bound: not reached
  close(shallow);
  close(fd);
}

TEST_CASE("home: handing over a tree that is not there names it") {
  CHECK_THROWS_WITH(handTreeTo("/nonexistent-chitin-home", getuid(), getgid()),
                    doctest::Contains("cannot open /nonexistent-chitin-home"));
}

}  // namespace
}  // namespace chitin
