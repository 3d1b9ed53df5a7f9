// SPDX-License-Identifier: Apache-2.0
// Tests for saving inbound attachments into the workspace inbox.
// Runs in: test

#include "inbox.h"

#include <doctest/doctest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

namespace chitin::channels {
namespace {

struct Workspace {
  std::string path;
  Workspace() {
    char tmpl[] = "/tmp/chitin-inbox-XXXXXX";
    path = mkdtemp(tmpl);
    REQUIRE(sodium_init() >= 0);
  }
  ~Workspace() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  std::string read(const std::string& rel) const {
    std::ifstream in(path + "/" + rel);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

TEST_CASE("attachment names: a plain basename, never a path, a dotfile or empty") {
  CHECK(safeAttachmentName("report.pdf") == "report.pdf");
  CHECK(safeAttachmentName("../x") == "x");
  CHECK(safeAttachmentName("../../etc/passwd") == "passwd");
  CHECK(safeAttachmentName("a/b") == "b");
  CHECK(safeAttachmentName("C:\\Users\\me\\notes.txt") == "notes.txt");
  CHECK(safeAttachmentName(std::string("a\0b.txt", 7)) == "a_b.txt");
  CHECK(safeAttachmentName(".bashrc") == "bashrc");
  CHECK(safeAttachmentName("...") == "attachment");
  CHECK(safeAttachmentName("..") == "attachment");
  CHECK(safeAttachmentName("") == "attachment");
  CHECK(safeAttachmentName("a/") == "attachment");
  CHECK(safeAttachmentName("résumé 1.pdf") == "r__sum___1.pdf");
  CHECK(safeAttachmentName("x$(rm -rf ~);.sh") == "x__rm_-rf____.sh");
  std::string longName = std::string(300, 'a') + ".tar.gz";
  std::string cut = safeAttachmentName(longName);
  CHECK(cut.size() == 80);
  CHECK(cut.substr(cut.size() - 3) == ".gz");
  CHECK(safeAttachmentName(std::string(300, 'b')).size() == 80);
}

TEST_CASE("attachment names: unique, dated, ending in the safe name") {
  Workspace ws;
  std::string a = inboxFileName("../photo.jpg"), b = inboxFileName("../photo.jpg");
  CHECK(a != b);
  CHECK(std::regex_match(a, std::regex("[0-9]{8}-[0-9]{6}-[0-9a-f]{8}-photo\\.jpg")));
}

TEST_CASE("inbox: the file is created under inbox/ (made 0700), 0600, with the bytes") {
  Workspace ws;
  std::string name = inboxFileName("notes.txt");
  CHECK(saveToInbox(ws.path, name, std::string("hello\0world", 11)) == "inbox/" + name);
  CHECK(ws.read("inbox/" + name) == std::string("hello\0world", 11));
  struct stat st;
  REQUIRE(stat((ws.path + "/inbox").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(stat((ws.path + "/inbox/" + name).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // Never over an existing file.
  CHECK_THROWS_WITH_AS(saveToInbox(ws.path, name, "again"), doctest::Contains("cannot be created"),
                       std::runtime_error);
  CHECK(ws.read("inbox/" + name) == std::string("hello\0world", 11));
}

TEST_CASE("inbox: a symlinked inbox (the model's tools could plant one) is refused") {
  Workspace ws;
  std::string outside = ws.path + "-outside";
  REQUIRE(mkdir(outside.c_str(), 0700) == 0);
  REQUIRE(symlink(outside.c_str(), (ws.path + "/inbox").c_str()) == 0);
  CHECK_THROWS_WITH_AS(saveToInbox(ws.path, "x.txt", "data"),
                       doctest::Contains("inbox/ in the workspace is not a directory"),
                       std::runtime_error);
  struct stat st;
  CHECK(stat((outside + "/x.txt").c_str(), &st) != 0);
  rmdir(outside.c_str());
}

TEST_CASE("inbox: a symlink planted at the file's name is not followed") {
  Workspace ws;
  REQUIRE(mkdir((ws.path + "/inbox").c_str(), 0700) == 0);
  std::ofstream(ws.path + "/target") << "keep";
  REQUIRE(symlink((ws.path + "/target").c_str(), (ws.path + "/inbox/f.txt").c_str()) == 0);
  CHECK_THROWS_AS(saveToInbox(ws.path, "f.txt", "overwrite"), std::runtime_error);
  CHECK(ws.read("target") == "keep");
}

TEST_CASE("inbox: names that are not plain are refused before anything is opened") {
  Workspace ws;
  for (std::string bad :
       std::vector<std::string>{"../x", "a/b", ".hidden", "", std::string("a\0b", 3)}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(saveToInbox(ws.path, bad, "x"), doctest::Contains("not a plain file name"),
                         std::runtime_error);
  }
  struct stat st;
  CHECK(stat((ws.path + "/inbox").c_str(), &st) != 0);
}

}  // namespace
}  // namespace chitin::channels
