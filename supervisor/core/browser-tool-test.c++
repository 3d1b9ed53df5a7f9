// SPDX-License-Identifier: Apache-2.0
// Tests for the `browser` tool's supervisor side: its arguments, and how screenshots and
// downloads are written beneath the workspace (no planted symlink is followed, nothing is
// overwritten). The worker and the gate run for real in tests/e2e/test_browser.py.
// Runs in: test

#include "browser-tool.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace chitin {
namespace {

using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempWorkspace {
  std::string root;
  TempWorkspace() {
    char tmpl[] = "/tmp/chitin-browser-tool-XXXXXX";
    root = mkdtemp(tmpl);
    mkdir((root + "/ws").c_str(), 0700);
    mkdir((root + "/outside").c_str(), 0700);
  }
  ~TempWorkspace() { [[maybe_unused]] int rc = std::system(("rm -rf '" + root + "'").c_str()); }
  std::string ws() const { return root + "/ws"; }
};

}  // namespace

TEST_CASE("browser tool: arguments are checked, each error naming the argument") {
  auto check = [](const char* text) { return checkBrowserArguments(json::parse(text)); };
  CHECK(check(R"({"action":"navigate","url":"https://example.com/a?b"})") == "");
  CHECK(check(R"({"action":"snapshot"})") == "");
  CHECK(check(R"({"action":"click","ref":12})") == "");
  CHECK(check(R"({"action":"click","ref":"[12]"})") == "");
  CHECK(check(R"({"action":"type","ref":3,"text":""})") == "");
  CHECK(check(R"({"action":"press","key":"Enter"})") == "");
  CHECK(check("{}").find("missing required argument \"action\"") == 0);
  CHECK(check(R"({"action":"fly"})").find("argument \"action\": expected one of") == 0);
  CHECK(check(R"({"action":"navigate"})").find("needs argument \"url\"") != std::string::npos);
  CHECK(check(R"({"action":"navigate","url":"file:///etc/passwd"})")
            .find("expected an http:// or https:// URL") != std::string::npos);
  CHECK(check(R"j({"action":"navigate","url":"javascript:alert(1)"})j").find("argument \"url\"") !=
        std::string::npos);
  CHECK(check(R"({"action":"navigate","url":7})") == "argument \"url\" must be a string");
  CHECK(check(R"({"action":"click"})").find("needs argument \"ref\"") != std::string::npos);
  CHECK(check(R"({"action":"click","ref":"e1"})").find("argument \"ref\" must be") == 0);
  CHECK(check(R"({"action":"click","ref":0})").find("argument \"ref\" must be") == 0);
  CHECK(check(R"({"action":"type","ref":1})").find("needs argument \"text\"") != std::string::npos);
  CHECK(check(R"({"action":"press"})").find("needs argument \"key\"") != std::string::npos);
  CHECK(check(R"({"action":"type","ref":1,"text":"a\u0000b"})") ==
        "argument \"text\" contains a NUL byte");
}

TEST_CASE("browser tool: a download's suggested name becomes one safe path component") {
  CHECK(safeFileName("report.pdf") == "report.pdf");
  CHECK(safeFileName("../../etc/passwd") == "passwd");
  CHECK(safeFileName(".bashrc") == "bashrc");
  CHECK(safeFileName("a b?\n.pdf") == "a_b__.pdf");
  CHECK(safeFileName("") == "download");
  // A long name whose last 100 bytes begin with a dot is not saved as a hidden file.
  CHECK(safeFileName(std::string(150, 'a') + "." + std::string(99, 'b')) == std::string(99, 'b'));
  CHECK(safeFileName("...") == "download");
  CHECK(safeFileName(std::string(300, 'x') + ".zip").size() == 100);
}

TEST_CASE("browser tool: files land beneath the workspace; a planted symlink is never followed") {
  TempWorkspace t;
  // Control: the directory is created and the file written.
  CHECK(writeBeneathWorkspace(t.ws(), "screenshots", "a.png", "PNG") == "");
  CHECK(slurp(t.ws() + "/screenshots/a.png") == "PNG");
  // An existing name is not overwritten.
  CHECK(writeBeneathWorkspace(t.ws(), "screenshots", "a.png", "other").find("File exists") !=
        std::string::npos);
  CHECK(slurp(t.ws() + "/screenshots/a.png") == "PNG");

  // downloads/ planted as a link out of the workspace, and as a link inside it.
  REQUIRE(symlink((t.root + "/outside").c_str(), (t.ws() + "/downloads").c_str()) == 0);
  CHECK(writeBeneathWorkspace(t.ws(), "downloads", "x.bin", "data").find("not a plain directory") !=
        std::string::npos);
  CHECK(access((t.root + "/outside/x.bin").c_str(), F_OK) != 0);
  unlink((t.ws() + "/downloads").c_str());
  REQUIRE(symlink("screenshots", (t.ws() + "/downloads").c_str()) == 0);
  CHECK(writeBeneathWorkspace(t.ws(), "downloads", "x.bin", "data") != "");
  CHECK(access((t.ws() + "/screenshots/x.bin").c_str(), F_OK) != 0);

  // The file name planted as a link to a file outside: refused, the target untouched.
  unlink((t.ws() + "/downloads").c_str());
  mkdir((t.ws() + "/downloads").c_str(), 0755);
  std::ofstream(t.root + "/outside/target") << "keep";
  REQUIRE(symlink((t.root + "/outside/target").c_str(), (t.ws() + "/downloads/y.bin").c_str()) ==
          0);
  CHECK(writeBeneathWorkspace(t.ws(), "downloads", "y.bin", "evil") != "");
  CHECK(slurp(t.root + "/outside/target") == "keep");
}

}  // namespace chitin
