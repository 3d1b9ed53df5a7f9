// SPDX-License-Identifier: Apache-2.0
// Tests for reading a channel credential and creating its state directory.
// Runs in: test

#include "account-setup.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace chitin::channels {
namespace {

struct CredentialHome {
  std::string path;
  CredentialHome() {
    char tmpl[] = "/tmp/chitin-account-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~CredentialHome() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text, mode_t mode) const {
    std::string p = path + "/" + name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p;
  }
};

TEST_CASE("credential: a 0600 file of the service user is read, one trailing newline dropped") {
  CredentialHome home;
  CHECK(readCredential(home.write("t", "123:abc\n", 0600), geteuid()) == "123:abc");
  CHECK(readCredential(home.write("t2", "123:abc\r\n", 0400), geteuid()) == "123:abc");
  CHECK(readCredential(home.write("t3", "two\nlines\n\n", 0600), geteuid()) == "two\nlines\n");
  CHECK(defaultCredentialPath("/h", "irc", "libera") == "/h/credentials/irc-libera");
}

TEST_CASE("credential: group/world access is refused with the chmod to run, and no content") {
  CredentialHome home;
  std::string p = home.write("t", "secret-token\n", 0640);
  CHECK_THROWS_WITH_AS(readCredential(p, geteuid()),
                       doctest::Contains(("run `chmod 600 " + p + "`").c_str()), AccountError);
  try {
    readCredential(home.write("w", "secret-token\n", 0602), geteuid());
    FAIL("not refused");
  } catch (const AccountError& e) {
    CHECK(std::string(e.what()).find("secret") == std::string::npos);
  }
}

TEST_CASE("credential: a symlink, a directory, a missing file, another owner are refused") {
  CredentialHome home;
  std::string target = home.write("real", "x", 0600);
  std::string link = home.path + "/link";
  REQUIRE(symlink(target.c_str(), link.c_str()) == 0);
  CHECK_THROWS_WITH_AS(readCredential(link, geteuid()), doctest::Contains("is a symlink"),
                       AccountError);
  CHECK_THROWS_WITH_AS(readCredential(home.path, geteuid()),
                       doctest::Contains("not a regular file"), AccountError);
  CHECK_THROWS_WITH_AS(readCredential(home.path + "/none", geteuid()),
                       doctest::Contains("no such file"), AccountError);
  CHECK_THROWS_WITH_AS(readCredential(target, geteuid() + 1),
                       doctest::Contains("not by the service user"), AccountError);
}

TEST_CASE("credential: its problems can be told without reading it") {
  CredentialHome home;
  bool missing = false;
  CHECK(credentialProblem(home.write("ok", "s", 0600), geteuid(), missing) == "");
  CHECK_FALSE(missing);
  CHECK(credentialProblem(home.write("open", "s", 0644), geteuid(), missing).find("chmod 600") !=
        std::string::npos);
  CHECK(credentialProblem(home.path + "/none", geteuid(), missing).find("no such file") !=
        std::string::npos);
  CHECK(missing);
}

TEST_CASE("state directory: created 0700 level by level; a symlink on the way is refused") {
  CredentialHome home;
  std::string dir = ensureStateDir(home.path, "telegram", "default");
  CHECK(dir == home.path + "/state/channels/telegram/default");
  struct stat st;
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(ensureStateDir(home.path, "telegram", "default") == dir);  // again: fine

  REQUIRE(mkdir((home.path + "/elsewhere").c_str(), 0700) == 0);
  REQUIRE(symlink((home.path + "/elsewhere").c_str(),
                  (home.path + "/state/channels/irc").c_str()) == 0);
  CHECK_THROWS_WITH_AS(ensureStateDir(home.path, "irc", "default"),
                       doctest::Contains("state/channels/irc: is not a directory"), AccountError);
}

TEST_CASE("state directory: removed with its contents; a symlink inside is removed, not followed") {
  CredentialHome home;
  std::string dir = ensureStateDir(home.path, "whatsapp", "default");
  REQUIRE(mkdir((dir + "/auth").c_str(), 0700) == 0);
  home.write("state/channels/whatsapp/default/auth/creds.json", "{}", 0600);
  std::string keep = home.write("keep.txt", "precious", 0600);
  REQUIRE(mkdir((home.path + "/keepdir").c_str(), 0700) == 0);
  home.write("keepdir/inner", "x", 0600);
  REQUIRE(symlink(keep.c_str(), (dir + "/file-link").c_str()) == 0);
  REQUIRE(symlink((home.path + "/keepdir").c_str(), (dir + "/dir-link").c_str()) == 0);
  CHECK(removeStateDir(home.path, "whatsapp", "default"));
  struct stat st;
  CHECK(stat(dir.c_str(), &st) != 0);
  CHECK(stat(keep.c_str(), &st) == 0);
  CHECK(stat((home.path + "/keepdir/inner").c_str(), &st) == 0);
  CHECK_FALSE(removeStateDir(home.path, "whatsapp", "default"));
  CHECK_FALSE(removeStateDir(home.path, "irc", "none"));
}

}  // namespace
}  // namespace chitin::channels
