// SPDX-License-Identifier: Apache-2.0
// Tests for the lexical workspace path rules: every accepted form and every rejection.
// Runs in: test

#include "workspace-path.h"
#include "test-text.h"

#include <doctest/doctest.h>
#include <string>

namespace chitin {
namespace {

std::string accepted(kj::StringPtr path) {
  auto result = checkWorkspacePath(path);
  if (result.is<PathRejection>()) {
    FAIL("unexpectedly rejected: ", result.get<PathRejection>().message.cStr());
    return {};
  }
  return result.get<kj::String>().cStr();
}

std::string rejected(kj::StringPtr path) {
  auto result = checkWorkspacePath(path);
  if (result.is<kj::String>()) {
    FAIL("unexpectedly accepted as ", result.get<kj::String>().cStr());
    return {};
  }
  return result.get<PathRejection>().message.cStr();
}

using chitin::testing::has;

TEST_CASE("workspace path: relative, ./ and /workspace/ forms give the same clean path") {
  CHECK(accepted("foo/bar.txt") == "foo/bar.txt");
  CHECK(accepted("./foo/bar.txt") == "foo/bar.txt");
  CHECK(accepted("/workspace/foo/bar.txt") == "foo/bar.txt");
  CHECK(accepted("foo//bar.txt") == "foo/bar.txt");
  CHECK(accepted("foo/./bar.txt") == "foo/bar.txt");
  CHECK(accepted("foo/bar/") == "foo/bar");
  CHECK(accepted("//workspace///foo") == "foo");
  CHECK(accepted("/./workspace/foo") == "foo");
}

TEST_CASE("workspace path: `..` that stays inside is folded away") {
  CHECK(accepted("a/b/../c") == "a/c");
  CHECK(accepted("a/..") == ".");
  CHECK(accepted("/workspace/a/../b") == "b");
  CHECK(accepted("a/b/../../c") == "c");
}

TEST_CASE("workspace path: the root itself is \".\"") {
  CHECK(accepted(".") == ".");
  CHECK(accepted("./") == ".");
  CHECK(accepted("/workspace") == ".");
  CHECK(accepted("/workspace/") == ".");
}

TEST_CASE("workspace path: names that only look special are ordinary names") {
  CHECK(accepted("...") == "...");
  CHECK(accepted("..foo") == "..foo");
  CHECK(accepted("foo..") == "foo..");
  CHECK(accepted("~/x") == "~/x");
  CHECK(accepted("a\\..\\..\\b") == "a\\..\\..\\b");
  CHECK(accepted("workspace/x") == "workspace/x");
  CHECK(accepted("caf\xc3\xa9.md") == "caf\xc3\xa9.md");
}

TEST_CASE("workspace path: an empty path is refused") { CHECK(has(rejected(""), "path is empty")); }

TEST_CASE("workspace path: a NUL byte is refused and shown escaped") {
  static const char WITH_NUL[] = "a\0b";
  auto message = rejected(kj::StringPtr(WITH_NUL, 3));
  CHECK(has(message, "NUL byte"));
  CHECK(has(message, "\"a\\x00b\""));
}

TEST_CASE("workspace path: more than 4096 bytes is refused, 4096 is accepted") {
  std::string ok(MAX_WORKSPACE_PATH_BYTES, 'a');
  CHECK(accepted(kj::StringPtr(ok.c_str(), ok.size())) == ok);
  std::string tooLong(MAX_WORKSPACE_PATH_BYTES + 1, 'a');
  auto message = rejected(kj::StringPtr(tooLong.c_str(), tooLong.size()));
  CHECK(has(message, "too long (4097 bytes, at most 4096)"));
  CHECK(message.size() < 300);  // shortened for display
}

TEST_CASE("workspace path: absolute paths outside /workspace are refused, naming the path") {
  auto message = rejected("/etc/passwd");
  CHECK(has(message, "absolute path outside the workspace"));
  CHECK(has(message, "\"/etc/passwd\""));
  CHECK(has(rejected("/"), "outside the workspace"));
  CHECK(has(rejected("/workspacefoo/x"), "outside the workspace"));
  CHECK(has(rejected("/tmp/workspace/x"), "outside the workspace"));
  CHECK(has(rejected("/../workspace/x"), "outside the workspace"));
}

TEST_CASE("workspace path: `..` leaving the root at any step is refused") {
  CHECK(has(rejected(".."), "path escapes the workspace: \"..\""));
  CHECK(has(rejected("../x"), "escapes the workspace"));
  CHECK(has(rejected("a/../../x"), "escapes the workspace"));
  CHECK(has(rejected("./../x"), "escapes the workspace"));
  CHECK(has(rejected("/workspace/.."), "escapes the workspace"));
  CHECK(has(rejected("/workspace/../etc/passwd"), "escapes the workspace"));
  // Leaving and coming back is still leaving.
  CHECK(has(rejected("../workspace/x"), "escapes the workspace"));
  CHECK(has(rejected("/workspace/../workspace/x"), "escapes the workspace"));
}

TEST_CASE("workspace path: displayPath escapes control bytes and quotes") {
  CHECK(std::string(displayPath("a\"b\\c\nd\x01").cStr()) == "\"a\\\"b\\\\c\\nd\\x01\"");
}

TEST_CASE("workspace path: displayPath shortens on UTF-8 boundaries") {
  std::string path;
  for (int i = 0; i < 200; ++i) path += "\xc3\xa9";  // é, two bytes each
  std::string shown = displayPath(kj::StringPtr(path.c_str(), path.size())).cStr();
  CHECK(shown.size() < 200);
  CHECK(has(shown, "\xe2\x80\xa6"));
  // Every é survived whole: no lone lead or continuation byte.
  std::string withoutEllipsis = shown;
  withoutEllipsis.erase(withoutEllipsis.find("\xe2\x80\xa6"), 3);
  for (size_t i = 1; i + 1 < withoutEllipsis.size(); i += 2) {
    CHECK(withoutEllipsis.compare(i, 2, "\xc3\xa9") == 0);
  }
}

}  // namespace
}  // namespace chitin
