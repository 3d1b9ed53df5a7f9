// SPDX-License-Identifier: Apache-2.0
// Tests for the snapshot name encoding and manifest.
// Runs in: test

#include "snapshot-names.h"

#include <doctest/doctest.h>

#include <random>
#include <set>

namespace chitin::audit::names {
namespace {

TEST_CASE("snapshot names: ordinary names are stored as they are") {
  for (const char* n : {"a", "README.md", ".gi", "git", "x.git", "ü.txt", " "})
    CHECK(encodeName(n) == n);
  // Names that start like .git are escaped even when they are not .git itself: git (and libgit2)
  // treat several of them as aliases, and a loose rule costs one escaped byte.
  CHECK(encodeName(".gitignore") == "%2Egitignore");
}

TEST_CASE("snapshot names: .git and every alias git refuses are escaped, and decode back") {
  for (const char* n :
       {".git", ".GIT", ".Git", "GIT~1", "git~1", ".git.", ".git ", ".gitmodules",
        ".git::$INDEX_ALLOCATION", ".g\xe2\x80\x8cit", "%", "%41", "a\nb", "\x7f", "100%"}) {
    std::string enc = encodeName(n);
    CAPTURE(enc);
    CHECK(enc != n);
    CHECK(decodeName(enc) == std::optional<std::string>(n));
  }
}

TEST_CASE("snapshot names: decode accepts only the canonical spelling, so no two collide") {
  CHECK_FALSE(decodeName("%41"));  // 'A' needs no escape: not canonical
  CHECK_FALSE(decodeName("%2e"));  // lower-case hex: not canonical
  CHECK_FALSE(decodeName("%2"));   // cut short
  CHECK_FALSE(decodeName("%zz"));
  CHECK_FALSE(decodeName(".git"));  // never stored unescaped
  CHECK_FALSE(decodeName("."));
  CHECK_FALSE(decodeName(".."));
  CHECK_FALSE(decodeName(""));
  CHECK_FALSE(decodeName("a%2Fb"));  // would hold a '/'
  CHECK_FALSE(decodeName("%00"));
  CHECK_FALSE(decodeName(MANIFEST));  // reserved: no workspace name encodes to it
  CHECK(decodeName("%2Egit") == std::optional<std::string>(".git"));
}

TEST_CASE("snapshot names: the encoding is injective over random names") {
  std::mt19937 rng(8);
  const std::string alphabet = std::string(".gitGIT~%2E ab/\n\x7f", 17) + "\xc3\xbc";
  std::set<std::string> encoded;
  std::set<std::string> originals;
  for (int i = 0; i < 20000; ++i) {
    std::string name;
    size_t len = 1 + rng() % 8;
    for (size_t j = 0; j < len; ++j) name += alphabet[rng() % alphabet.size()];
    if (name.find('/') != std::string::npos || name == "." || name == "..") continue;
    if (!originals.insert(name).second) continue;
    std::string enc = encodeName(name);
    CHECK(encoded.insert(enc).second);  // no two names share an encoding
    REQUIRE(decodeName(enc) == std::optional<std::string>(name));
    CHECK(enc != MANIFEST);
  }
}

TEST_CASE("snapshot names: manifests round-trip, paths with tabs and newlines included") {
  Manifest m;
  m.incomplete = true;
  m.incompleteReason = "time\nlimit";
  m.skipped = {
      {"locked", "cannot open: Permission denied"}, {"a/.git/x\ty\nz", "a fifo"}, {".", "whole"}};
  auto back = readManifest(writeManifest(m));
  REQUIRE(back);
  CHECK(back->incomplete);
  CHECK(back->incompleteReason == "time limit");
  REQUIRE(back->skipped.size() == 3);
  CHECK(back->skipped[1].path == "a/.git/x\ty\nz");
  CHECK(back->skipped[2].path == ".");
  CHECK_FALSE(readManifest("chitin-snapshot 2\nskipped\t.git\tx\n"));  // not canonical
  CHECK_FALSE(readManifest("something else\n"));
}

}  // namespace
}  // namespace chitin::audit::names
