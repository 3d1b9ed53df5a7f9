// SPDX-License-Identifier: Apache-2.0
// Test support: stop being root (see drop-root.h).
// Runs in: tests

#include "drop-root.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace chitin::testing {

namespace {

std::string failed(const char* call) { return std::string(call) + ": " + strerror(errno); }

}  // namespace

std::string testUser() {
  const char* user = getenv("CHITIN_TEST_USER");
  return user != nullptr && *user != '\0' ? user : "chitin-test";
}

std::optional<std::string> dropRoot(const std::string& user) {
  if (geteuid() != 0 && getuid() != 0) return std::nullopt;
  errno = 0;
  passwd* entry = getpwnam(user.c_str());
  if (entry == nullptr) {
    return "running as root and the test user \"" + user +
           "\" does not exist (create it: " + "useradd --system --no-create-home " + user +
           ", or set CHITIN_TEST_USER)";
  }
  if (entry->pw_uid == 0) return "the test user \"" + user + "\" is uid 0";
  uid_t uid = entry->pw_uid;
  gid_t gid = entry->pw_gid;
  // Order matters: groups and gid while we still may change them, the uid last.
  if (setgroups(0, nullptr) != 0) return failed("setgroups");
  if (setresgid(gid, gid, gid) != 0) return failed("setresgid");
  if (setresuid(uid, uid, uid) != 0) return failed("setresuid");
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) return "uid did not change";
  if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) {
    return "gid did not change";
  }
  if (getgroups(0, nullptr) != 0) return "supplementary groups remain";
  if (setuid(0) == 0 || seteuid(0) == 0) return "uid 0 can still be regained";
  // Changing ids cleared the dumpable flag, which would make /proc/self root-owned.
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return failed("prctl(PR_SET_DUMPABLE)");
  return std::nullopt;
}

}  // namespace chitin::testing
