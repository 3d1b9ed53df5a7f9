// SPDX-License-Identifier: Apache-2.0
// libgit2 keeps no CA bundle once a snapshot repository is open (emptyTrustStore in
// snapshots.c++). A binary of its own: libgit2 starts once per process, and the figure is the
// heap that start leaves behind, which another test opening a repository first would hide.
// Runs in: test

#include <doctest/doctest.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "audit-test-util.h"
#include "snapshots.h"

namespace chitin::audit {
namespace {

// Whether mallinfo2() sees this process's allocations (a sanitizer's allocator is not glibc's).
bool heapCounted() {
  size_t before = mallinfo2().uordblks;
  void* volatile block = ::malloc(64 * 1024);  // volatile: the allocation is not elided
  bool counted = mallinfo2().uordblks >= before + 64 * 1024;
  ::free(block);
  return counted;
}

constexpr char CA_BUNDLE[] = "/etc/ssl/certs/ca-certificates.crt";  // what libgit2 reads

TEST_CASE("snapshots: an open repository leaves no parsed CA bundle on the supervisor's heap") {
  struct stat st;
  if (!heapCounted() || ::stat(CA_BUNDLE, &st) != 0 || st.st_size < 64 * 1024) {
    MESSAGE("skipped: heap not countable here, or no CA bundle for libgit2 to read");
    return;
  }
  test::TempDir dir;
  std::filesystem::create_directory(dir.path + "/work");
  size_t before = mallinfo2().uordblks;
  Snapshots snapshots(dir.path + "/state/main.git", dir.path + "/work");  // made and opened now
  size_t held = mallinfo2().uordblks - before;
  INFO("heap held after opening: ", held / 1024, " KiB; the bundle: ", st.st_size / 1024,
       " KiB of PEM");
  // Debian's bundle (~140 certificates, 210 KiB of PEM) parses to ~360 KiB; libgit2's own state
  // and the open repository are ~200 KiB.
  CHECK(held < 320 * 1024);
  // Nothing is left beside the repository.
  size_t entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path + "/state")) {
    CHECK(e.path().filename() == "main.git");
    ++entries;
  }
  CHECK(entries == 1);
  // Snapshots still work without it.
  test::writeFile(dir.path + "/work/a.txt", "hello\n");
  CHECK(snapshots.take("first").id.size() == 40);
}

}  // namespace
}  // namespace chitin::audit
