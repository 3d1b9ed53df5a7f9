// SPDX-License-Identifier: Apache-2.0
// Tests for `chitin audit verify|tail|show`.
// Runs in: test

#include "audit-cli.h"

#include <doctest/doctest.h>

#include <sstream>

#include "audit-test-util.h"

namespace chitin::audit {
namespace {

using test::lines;
using test::readFile;
using test::TempDir;
using test::writeFile;

struct Run {
  int code;
  std::string out, err;
};

Run run(const std::string& dir, std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = auditCommand(args, dir, out, err);
  return {code, out.str(), err.str()};
}

void fill(const std::string& dir) {
  auto log = AuditLog::open(dir);
  Record in;
  in.set_kind(MESSAGE_IN);
  in.set_session("agent:main:cli:direct:operator");
  in.set_principal("Sender::\"local:operator\"");
  in.set_detail("please write notes\x1b[2J");
  log->append(in);
  Record decision;
  decision.set_kind(DECISION);
  decision.set_session("agent:main:cli:direct:operator");
  decision.set_tool("write");
  decision.mutable_decision()->set_outcome("allow");
  decision.mutable_decision()->add_policies("policy0");
  decision.mutable_decision()->add_policies("policy3");
  log->append(decision);
  Record start;
  start.set_kind(TOOL_START);
  start.set_session("agent:main:cli:direct:operator");
  start.set_tool("write");
  start.set_call_id("call_1");
  start.set_arguments(R"({"path":"notes.md","content":"x"})");
  start.set_snapshot("0123456789abcdef0123456789abcdef01234567");
  log->append(start);
  Record end;
  end.set_kind(TOOL_END);
  end.set_session("agent:other:irc:direct:bob");
  end.set_tool("write");
  end.set_outcome("ok");
  auto* f = end.add_files();
  f->set_path("notes.md");
  f->set_after("ce013625030ba8dba906f756967f9e9ca394464a");
  log->append(end);
}

TEST_CASE("audit cli: bidi, zero-width, C1 and padding from a model are shown escaped") {
  TempDir dir;
  {
    auto log = AuditLog::open(dir.path);
    Record start;
    start.set_kind(TOOL_START);
    start.set_session("agent:main:telegram:direct:\u202e99");
    start.set_tool("exec");
    start.set_arguments("{\"command\":\"ls" + std::string(200, ' ') + "; rm -rf \u2066x\u2069\"}");
    start.set_detail(
        "ok\xc2\x9b"
        "2J\u200b");
    log->append(start);
  }
  auto r = run(dir.path, {"show", "1"});
  CHECK(r.code == 0);
  CHECK(r.out.find("session:   agent:main:telegram:direct:\\u202e99\n") != std::string::npos);
  CHECK(r.out.find("arguments: {\"command\":\"ls\\[200 spaces]; rm -rf \\u2066x\\u2069\"}\n") !=
        std::string::npos);
  CHECK(r.out.find("detail:    ok\\u009b2J\\u200b\n") != std::string::npos);
  r = run(dir.path, {"tail"});
  CHECK(r.out.find("\"ok\\u009b2J\\u200b\"") != std::string::npos);
  for (const std::string& text : {run(dir.path, {"show", "1"}).out, r.out}) {
    for (const char* raw : {"\xc2\x9b", "\u202e", "\u200b", "\u2066"})
      CHECK(text.find(raw) == std::string::npos);
  }
}

TEST_CASE("audit cli: verify prints the head and exits 0, or the first break and exits 1") {
  TempDir dir;
  fill(dir.path);
  auto r = run(dir.path, {"verify"});
  CHECK(r.code == 0);
  std::string head = sha256Hex(lines(readFile(dir.path + "/audit.jsonl")).back());
  CHECK(r.out == "ok: 4 records, head seq 4 sha256 " + head + "\n");

  auto ls = lines(readFile(dir.path + "/audit.jsonl"));
  ls.erase(ls.begin() + 1);
  std::string content;
  for (auto& l : ls) content += l + "\n";
  writeFile(dir.path + "/audit.jsonl", content);
  r = run(dir.path, {"verify"});
  CHECK(r.code == 1);
  CHECK(r.out == "");
  CHECK(r.err.find("audit log broken at line 2 (seq 3): seq 3 follows seq 1") == 0);

  TempDir empty;
  r = run(empty.path, {"verify"});
  CHECK(r.code == 1);
  CHECK(r.err.find("no audit log") != std::string::npos);
}

TEST_CASE("audit cli: tail prints the last N records one line each, control characters escaped") {
  TempDir dir;
  fill(dir.path);
  auto r = run(dir.path, {"tail"});
  CHECK(r.code == 0);
  auto ls = lines(r.out);
  REQUIRE(ls.size() == 4);
  CHECK(ls[0].find("1 ") == 0);
  CHECK(ls[0].find(" MESSAGE_IN agent:main:cli:direct:operator Sender::\"local:operator\" - - -") !=
        std::string::npos);
  CHECK(ls[0].find("\\x1b[2J") != std::string::npos);
  CHECK(ls[0].find('\x1b') == std::string::npos);
  CHECK(ls[1].find(" DECISION ") != std::string::npos);
  CHECK(ls[1].find(" write - allow(policy0,policy3)") != std::string::npos);
  CHECK(ls[2].find("snapshot=0123456789ab") != std::string::npos);
  CHECK(ls[3].find(" TOOL_END agent:other:irc:direct:bob - write ok - files=1") !=
        std::string::npos);

  r = run(dir.path, {"tail", "-n", "2"});
  ls = lines(r.out);
  REQUIRE(ls.size() == 2);
  CHECK(ls[0].find("3 ") == 0);

  r = run(dir.path, {"tail", "-n", "1", "--json"});
  CHECK(r.out == lines(readFile(dir.path + "/audit.jsonl")).back() + "\n");
}

TEST_CASE("audit cli: tail shows a bad line instead of skipping it, and exits 1") {
  TempDir dir;
  fill(dir.path);
  writeFile(dir.path + "/audit.jsonl", readFile(dir.path + "/audit.jsonl") + "garbage\n");
  auto r = run(dir.path, {"tail", "-n", "2"});
  CHECK(r.code == 1);
  CHECK(r.out.find("line 5: not a valid audit record") != std::string::npos);
}

TEST_CASE("audit cli: tail -f prints a record appended after it started") {
  TempDir dir;
  fill(dir.path);
  auto log = AuditLog::open(dir.path);
  std::ostringstream out, err;
  int polls = 0;
  auto stop = [&] {
    ++polls;
    if (polls == 2) {
      Record late;
      late.set_kind(MESSAGE_OUT);
      late.set_detail("the late one");
      log->append(late);
    }
    return out.str().find("the late one") != std::string::npos || polls > 100;
  };
  int code = auditCommand({"tail", "-n", "1", "-f"}, dir.path, out, err, stop, 10);
  CHECK(code == 0);
  CHECK(polls <= 100);
  auto ls = lines(out.str());
  REQUIRE(ls.size() == 2);
  CHECK(ls[0].find("4 ") == 0);
  CHECK(ls[1].find("5 ") == 0);
  CHECK(ls[1].find("MESSAGE_OUT") != std::string::npos);
}

TEST_CASE("audit cli: show prints full detail by seq, session or time") {
  TempDir dir;
  fill(dir.path);
  auto r = run(dir.path, {"show", "3"});
  CHECK(r.code == 0);
  CHECK(r.out.find("seq 3  ") == 0);
  CHECK(r.out.find("TOOL_START") != std::string::npos);
  CHECK(r.out.find("  arguments: {\"path\":\"notes.md\",\"content\":\"x\"}\n") !=
        std::string::npos);
  CHECK(r.out.find("  snapshot:  0123456789abcdef0123456789abcdef01234567\n") != std::string::npos);
  CHECK(r.out.find("  prev:      ") != std::string::npos);

  r = run(dir.path, {"show", "2"});
  CHECK(r.out.find("  decision:  allow\n    policy:  policy0\n    policy:  policy3\n") !=
        std::string::npos);
  r = run(dir.path, {"show", "4"});
  CHECK(
      r.out.find("  file:      notes.md  (absent) -> ce013625030ba8dba906f756967f9e9ca394464a\n") !=
      std::string::npos);

  r = run(dir.path, {"show", "--session", "agent:main:cli:direct:operator"});
  CHECK(r.code == 0);
  CHECK(r.out.find("seq 1 ") != std::string::npos);
  CHECK(r.out.find("seq 3 ") != std::string::npos);
  CHECK(r.out.find("seq 4 ") == std::string::npos);

  r = run(dir.path, {"show", "--since", "1h"});
  CHECK(r.code == 0);
  CHECK(r.out.find("seq 4 ") != std::string::npos);
  r = run(dir.path, {"show", "--since", "2999-01-01"});
  CHECK(r.code == 1);
  CHECK(r.err == "no matching audit records\n");

  r = run(dir.path, {"show", "2", "--json"});
  CHECK(r.out == lines(readFile(dir.path + "/audit.jsonl"))[1] + "\n");

  r = run(dir.path, {"show", "99"});
  CHECK(r.code == 1);
}

TEST_CASE("audit cli: an EGRESS record shows worker, host:port, address, bytes and time") {
  Record r;
  r.set_seq(7);
  r.set_kind(EGRESS);
  r.set_worker("model");
  r.set_host("api.example.com");
  r.set_port(443);
  r.set_address("93.184.216.34:443");
  r.set_bytes_up(512);
  r.set_bytes_down(2048);
  r.set_duration_ms(31);
  r.set_outcome("ok");
  CHECK(formatSummary(r).find("EGRESS - - - ok - model -> api.example.com:443 "
                              "(93.184.216.34:443) up=512 down=2048 ms=31") != std::string::npos);
  std::string detail = formatDetail(r);
  CHECK(detail.find("  worker:    model\n  host:      api.example.com:443\n  address:   "
                    "93.184.216.34:443\n  bytes:     512 up, 2048 down\n  duration:  31 ms\n") !=
        std::string::npos);
  // A hostile host name is shown escaped, like every other field.
  r.set_host("evil\x1b[2J.example");
  CHECK(formatSummary(r).find("\x1b") == std::string::npos);
}

TEST_CASE("audit cli: bad arguments exit 2 with a message") {
  TempDir dir;
  fill(dir.path);
  for (std::vector<std::string> args : {std::vector<std::string>{},
                                        {"frobnicate"},
                                        {"verify", "extra"},
                                        {"tail", "-n"},
                                        {"tail", "-n", "lots"},
                                        {"tail", "--bogus"},
                                        {"show"},
                                        {"show", "x1"},
                                        {"show", "--since", "yesterday"},
                                        {"show", "3", "--session", "s"},
                                        {"show", "--session"}}) {
    auto r = run(dir.path, args);
    CAPTURE(args.size());
    CHECK(r.code == 2);
    CHECK(r.err.find("usage: chitin audit") != std::string::npos);
    CHECK(r.out == "");
  }
  auto r = run(dir.path, {"show", "--since", "yesterday"});
  CHECK(r.err.find("bad time 'yesterday'") != std::string::npos);
  CHECK(run(dir.path, {"help"}).code == 0);
}

}  // namespace
}  // namespace chitin::audit
