// SPDX-License-Identifier: Apache-2.0
// Tests for the hash-chained audit log.
// Runs in: test

#include "audit-log.h"

#include <doctest/doctest.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "audit-test-util.h"

namespace chitin::audit {
namespace {

using test::lines;
using test::readFile;
using test::TempDir;
using test::writeFile;

Record toolStart(const std::string& session, const std::string& tool, const std::string& snap) {
  Record r;
  r.set_kind(TOOL_START);
  r.set_session(session);
  r.set_principal("Sender::\"local:operator\"");
  r.set_tool(tool);
  r.set_call_id("call-" + tool);
  r.set_arguments(R"({"path":"notes.md","content":"hi\nthere"})");
  r.set_snapshot(snap);
  return r;
}

// Writes five valid records and returns the file's lines.
std::vector<std::string> fiveRecords(const TempDir& dir) {
  auto log = AuditLog::open(dir.path);
  for (int i = 0; i < 5; ++i) log->append(toolStart("s", "t" + std::to_string(i), ""));
  return lines(readFile(dir.path + "/audit.jsonl"));
}

void rewrite(const TempDir& dir, const std::vector<std::string>& ls) {
  std::string content;
  for (auto& l : ls) content += l + "\n";
  writeFile(dir.path + "/audit.jsonl", content);
}

TEST_CASE("audit log: records chain by SHA-256 of the previous line and seq counts from 1") {
  TempDir dir;
  auto log = AuditLog::open(dir.path);
  CHECK(log->openProblem() == "");
  CHECK(log->lastSeq() == 0);
  Record r = toolStart("agent:main:cli:direct:operator", "write", "abc");
  r.set_seq(99);         // overwritten
  r.set_prev("forged");  // overwritten
  CHECK(log->append(r) == 1);
  CHECK(log->append(toolStart("s", "exec", "")) == 2);
  auto ls = lines(readFile(log->path()));
  REQUIRE(ls.size() == 2);
  Record first = parseLine(ls[0]);
  Record second = parseLine(ls[1]);
  CHECK(first.seq() == 1);
  CHECK(first.prev() == GENESIS_HASH);
  CHECK(first.arguments() == R"({"path":"notes.md","content":"hi\nthere"})");
  CHECK(second.prev() == sha256Hex(ls[0]));
  CHECK(first.time().size() == 24);  // 2024-05-01T12:00:00.000Z
  CHECK(first.time().back() == 'Z');
  // lowerCamelCase names, enum by name, no whitespace between fields.
  CHECK(ls[0].find("\"callId\":\"call-write\"") != std::string::npos);
  CHECK(ls[0].find("\"kind\":\"TOOL_START\"") != std::string::npos);
  CHECK(ls[0].find("\", \"") == std::string::npos);
  struct stat st;
  REQUIRE(stat(log->path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat(dir.path.c_str(), &st) == 0);
}

TEST_CASE("audit log: a new directory is created 0700") {
  TempDir dir;
  std::string sub = dir.path + "/state/audit";
  AuditLog::open(sub);
  struct stat st;
  REQUIRE(stat(sub.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("audit log: reopening continues seq and chain") {
  TempDir dir;
  { AuditLog::open(dir.path)->append(toolStart("s", "a", "")); }
  {
    auto log = AuditLog::open(dir.path);
    CHECK(log->lastSeq() == 1);
    CHECK(log->append(toolStart("s", "b", "")) == 2);
  }
  auto log = AuditLog::open(dir.path);
  CHECK(log->append(toolStart("s", "c", ""), false) == 3);
  auto r = verify(dir.path);
  CHECK(r.ok);
  CHECK(r.records == 3);
  CHECK(r.headSeq == 3);
  CHECK(r.headHash == sha256Hex(lines(readFile(log->path())).back()));
}

TEST_CASE("audit log: a second writer on the same log is refused") {
  TempDir dir;
  auto log = AuditLog::open(dir.path);
  CHECK_THROWS_WITH_AS(AuditLog::open(dir.path), doctest::Contains("already open"),
                       std::runtime_error);
}

TEST_CASE(
    "audit log: records appended without sync are written at once; syncAsync() then succeeds") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  auto log = AuditLog::open(dir.path);
  log->append(toolStart("s", "a", ""), false);
  CHECK(lines(readFile(log->path())).size() == 1);  // in the file (page cache), not buffered
  log->syncAsync().wait(io.waitScope);
  log->append(toolStart("s", "b", ""), true);
  CHECK(verify(dir.path).ok);
}

TEST_CASE(
    "audit log: syncAsync() resolves on the caller's loop; a closing log answers every "
    "request still waiting") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  auto log = AuditLog::open(dir.path);
  log->append(toolStart("s", "a", ""), false);
  log->syncAsync().wait(io.waitScope);
  // Several at once (one sync may answer them all), and more left waiting as the log closes.
  kj::Vector<kj::Promise<void>> waiting;
  for (int i = 0; i < 20; ++i) {
    log->append(toolStart("s", "b" + std::to_string(i), ""), false);
    waiting.add(log->syncAsync());
  }
  log.reset();
  kj::joinPromises(waiting.releaseAsArray()).wait(io.waitScope);  // none broken by the close
  CHECK(verify(dir.path).ok);
  CHECK(verify(dir.path).records == 21);
}

TEST_CASE("audit log: a sync that fails rejects syncAsync(), naming the log") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  // A FIFO takes appends into its buffer, and fdatasync() on it fails (EINVAL).
  REQUIRE(mkfifo((dir.path + "/audit.jsonl").c_str(), 0600) == 0);
  auto log = AuditLog::open(dir.path);
  log->append(toolStart("s", "a", ""), false);
  auto failure = kj::runCatchingExceptions([&]() { log->syncAsync().wait(io.waitScope); });
  KJ_IF_MAYBE (e, failure) {
    CHECK(std::string(e->getDescription().cStr()).find("cannot sync " + log->path()) !=
          std::string::npos);
  } else {
    FAIL("syncAsync() resolved though the sync failed");
  }
  CHECK_THROWS_AS(log->append(toolStart("s", "b", "")), std::runtime_error);  // synced in line
}

TEST_CASE("audit log: a failed write throws, leaves no partial line, and the chain continues") {
  TempDir dir;
  auto log = AuditLog::open(dir.path);
  log->append(toolStart("s", "a", ""));
  struct stat st;
  REQUIRE(stat(log->path().c_str(), &st) == 0);
  // Let the next write get only a few bytes in (a short write, then EFBIG).
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = static_cast<rlim_t>(st.st_size + 10);
  REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  CHECK_THROWS_AS(log->append(toolStart("s", "big", "")), std::runtime_error);
  setrlimit(RLIMIT_FSIZE, &old);
  struct stat after;
  REQUIRE(stat(log->path().c_str(), &after) == 0);
  CHECK(after.st_size == st.st_size);
  CHECK(log->lastSeq() == 1);
  CHECK(log->append(toolStart("s", "b", "")) == 2);
  CHECK(verify(dir.path).ok);
}

TEST_CASE("audit log: a torn tail is cut off on open and a LOG_RECOVERED record says so") {
  TempDir dir;
  { AuditLog::open(dir.path)->append(toolStart("s", "a", "")); }
  std::string path = dir.path + "/audit.jsonl";
  std::string good = readFile(path);
  writeFile(path, good + R"({"seq":"2","time":"2024-)");  // 24 bytes, no newline
  auto log = AuditLog::open(dir.path);
  CHECK(log->openProblem() == "");
  CHECK(log->lastSeq() == 2);
  auto ls = lines(readFile(path));
  REQUIRE(ls.size() == 2);
  Record rec = parseLine(ls[1]);
  CHECK(rec.kind() == LOG_RECOVERED);
  CHECK(rec.seq() == 2);
  CHECK(rec.detail().find("24 bytes") != std::string::npos);
  CHECK(readFile(path).substr(0, good.size()) == good);
  CHECK(verify(dir.path).ok);
}

TEST_CASE("audit log: verify reports an incomplete last line without changing the file") {
  TempDir dir;
  fiveRecords(dir);
  std::string path = dir.path + "/audit.jsonl";
  writeFile(path, readFile(path) + "{\"seq\":\"6\"");
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 6);
  CHECK(r.reason.find("incomplete") != std::string::npos);
}

TEST_CASE("audit log: verify finds an edited field in a middle record at the next line") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  REQUIRE(verify(dir.path).ok);
  auto pos = ls[2].find("notes.md");
  REQUIRE(pos != std::string::npos);
  ls[2].replace(pos, 8, "evil.md!");
  rewrite(dir, ls);
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 4);
  CHECK(r.badSeq == 4);
  CHECK(r.records == 3);
  CHECK(r.reason.find("line 3") != std::string::npos);
}

TEST_CASE("audit log: verify finds a deleted line") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  ls.erase(ls.begin() + 2);
  rewrite(dir, ls);
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 3);
  CHECK(r.badSeq == 4);
}

TEST_CASE("audit log: verify finds a reordered pair") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  std::swap(ls[2], ls[3]);
  rewrite(dir, ls);
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 3);
  CHECK(r.badSeq == 4);
}

TEST_CASE("audit log: verify finds a line that is not JSON") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  ls[1] = "{\"seq\": 2, oops";
  rewrite(dir, ls);
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 2);
  CHECK(r.badSeq == 0);
  CHECK(r.reason.find("not a valid record") != std::string::npos);
}

TEST_CASE("audit log: verify finds a broken seq even when the hashes were recomputed") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  // A forger who re-chains every hash after renumbering still breaks seq.
  std::vector<std::string> forged;
  std::string prev = GENESIS_HASH;
  for (size_t i = 0; i < ls.size(); ++i) {
    Record r = parseLine(ls[i]);
    if (i == 3) r.set_seq(7);
    r.set_prev(prev);
    forged.push_back(toLine(r));
    prev = sha256Hex(forged.back());
  }
  rewrite(dir, forged);
  auto r = verify(dir.path);
  CHECK_FALSE(r.ok);
  CHECK(r.badLine == 4);
  CHECK(r.badSeq == 7);
  CHECK(r.reason.find("expected 4") != std::string::npos);
}

TEST_CASE("audit log: verify on a missing log fails, on an empty log succeeds") {
  TempDir dir;
  CHECK_FALSE(verify(dir.path).ok);
  writeFile(dir.path + "/audit.jsonl", "");
  auto r = verify(dir.path);
  CHECK(r.ok);
  CHECK(r.records == 0);
  CHECK(r.headHash == GENESIS_HASH);
}

TEST_CASE("audit log: open on a broken chain reports it, repairs nothing, and keeps appending") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  ls.erase(ls.begin() + 1);
  rewrite(dir, ls);
  auto log = AuditLog::open(dir.path);
  CHECK(log->openProblem().find("line 2") != std::string::npos);
  CHECK(log->lastSeq() == 5);
  CHECK(log->append(toolStart("s", "after", "")) == 6);
  auto now = lines(readFile(log->path()));
  REQUIRE(now.size() == 5);
  CHECK(parseLine(now[4]).prev() == sha256Hex(now[3]));
  auto r = verify(dir.path);
  CHECK(r.badLine == 2);  // still the original break, nothing new
}

TEST_CASE("audit log: open resumes from the tail of a long log, and a last line of any length") {
  TempDir dir;
  {
    auto log = AuditLog::open(dir.path);
    // Far more than the tail open() reads first, then a last line longer than it.
    for (int i = 0; i < 2000; ++i) log->append(toolStart("s", "t" + std::to_string(i), ""), false);
    Record big = toolStart("s", "big", "");
    big.set_arguments(std::string(300000, 'x'));
    log->append(big);
  }
  {
    auto log = AuditLog::open(dir.path);
    CHECK(log->openProblem() == "");
    CHECK(log->lastSeq() == 2001);
    CHECK(log->append(toolStart("s", "after", "")) == 2002);
  }
  auto r = verify(dir.path);
  CHECK(r.ok);
  CHECK(r.records == 2002);
  CHECK(r.headHash == sha256Hex(lines(readFile(dir.path + "/audit.jsonl")).back()));
}

TEST_CASE("audit log: a last line that is not a record: the head is the last record's seq") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  ls.push_back("not a record");
  rewrite(dir, ls);
  auto log = AuditLog::open(dir.path);
  CHECK(log->openProblem().find("line 6") != std::string::npos);
  CHECK(log->lastSeq() == 5);
  CHECK(log->append(toolStart("s", "after", "")) == 6);
  auto now = lines(readFile(log->path()));
  CHECK(parseLine(now.back()).prev() == sha256Hex("not a record"));
}

TEST_CASE("audit log: closing a log while its chain is being checked does not wait for the end") {
  TempDir dir;
  {
    auto log = AuditLog::open(dir.path);
    for (int i = 0; i < 3000; ++i) log->append(toolStart("s", "t" + std::to_string(i), ""), false);
  }
  for (int i = 0; i < 3; ++i) AuditLog::open(dir.path);  // opened and closed at once
  CHECK(verify(dir.path).ok);
}

TEST_CASE("audit log: a check put off by verifyAfter begins then; closing the log does not wait") {
  TempDir dir;
  auto ls = fiveRecords(dir);
  ls.erase(ls.begin() + 1);
  rewrite(dir, ls);
  {
    auto start = std::chrono::steady_clock::now();
    auto log = AuditLog::open(dir.path, std::chrono::milliseconds(300));
    CHECK(log->openProblem().find("line 2") != std::string::npos);  // found once it has begun
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
  }
  auto start = std::chrono::steady_clock::now();
  AuditLog::open(dir.path, std::chrono::hours(1));  // opened and closed at once
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

// Writes records with chosen times (read() does not check the chain).
void writeRecords(const TempDir& dir, std::vector<Record> recs) {
  std::vector<std::string> ls;
  uint64_t seq = 0;
  for (auto& r : recs) {
    r.set_seq(++seq);
    ls.push_back(toLine(r));
  }
  rewrite(dir, ls);
}

Record at(Record r, const std::string& time) {
  r.set_time(time);
  return r;
}

TEST_CASE("audit log: read() filters by seq, session, since and kind") {
  TempDir dir;
  Record msg;
  msg.set_kind(MESSAGE_IN);
  msg.set_session("s1");
  writeRecords(dir, {at(msg, "2024-04-30T23:59:59.999Z"),
                     at(toolStart("s1", "write", "c1"), "2024-05-01T09:59:59.999Z"),
                     at(toolStart("s2", "exec", ""), "2024-05-01T10:00:00.000Z"),
                     at(toolStart("s1", "edit", "c2"), "2024-05-02T00:00:00.000Z")});
  CHECK(read(dir.path, {}).size() == 4);
  Filter f;
  f.seq = 3;
  REQUIRE(read(dir.path, f).size() == 1);
  CHECK(read(dir.path, f)[0].tool() == "exec");
  f = {};
  f.session = "s1";
  CHECK(read(dir.path, f).size() == 3);
  f.kind = TOOL_START;
  CHECK(read(dir.path, f).size() == 2);
  f = {};
  f.since = "2024-05-01";
  CHECK(read(dir.path, f).size() == 3);
  f.since = "2024-05-01T12:00:00+02:00";  // 10:00 UTC
  auto got = read(dir.path, f);
  REQUIRE(got.size() == 2);
  CHECK(got[0].seq() == 3);
  f.since = "2024-05-01T09:59:59.9995Z";  // fractions beyond ms are cut
  CHECK(read(dir.path, f).size() == 3);
  f.since = "1d";  // relative: all of these are long past
  CHECK(read(dir.path, f).empty());
  f.since = "yesterday";
  CHECK_THROWS_AS(read(dir.path, f), std::invalid_argument);
}

TEST_CASE("audit log: read() on a missing log is empty; a bad line is an error naming it") {
  TempDir dir;
  CHECK(read(dir.path, {}).empty());
  writeFile(dir.path + "/audit.jsonl", toLine(toolStart("s", "a", "")) + "\nnot json\n");
  CHECK_THROWS_WITH_AS(read(dir.path, {}), doctest::Contains("line 2"), std::runtime_error);
}

TEST_CASE("audit log: findSnapshotRecord picks the requested or the last snapshotted call") {
  TempDir dir;
  Record msg;
  msg.set_kind(MESSAGE_IN);
  writeRecords(dir, {msg, toolStart("s1", "write", "c1"), toolStart("s2", "edit", "c2"),
                     toolStart("s1", "read", ""), toolStart("s1", "exec", "c3")});
  CHECK(findSnapshotRecord(dir.path, std::nullopt).snapshot() == "c3");
  CHECK(findSnapshotRecord(dir.path, std::nullopt, "s2").snapshot() == "c2");
  CHECK(findSnapshotRecord(dir.path, 2).snapshot() == "c1");
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, 1), doctest::Contains("MESSAGE_IN"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, 4), doctest::Contains("no snapshot"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, 42), doctest::Contains("no audit record"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, 2, "s2"), doctest::Contains("no audit record"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, std::nullopt, "s3"),
                       doctest::Contains("no tool call with a workspace snapshot"),
                       std::invalid_argument);
}

TEST_CASE("audit log: findSnapshotRecord reads from the end, across pieces, and names a bad line") {
  TempDir dir;
  Record big = toolStart("s1", "write", "c1");
  big.set_arguments(std::string(200000, 'a'));  // longer than one piece read from the end
  std::vector<Record> recs = {toolStart("s1", "write", "c0"), big};
  for (int i = 0; i < 500; ++i) recs.push_back(toolStart("s2", "read", ""));
  recs.push_back(toolStart("s2", "exec", "c2"));
  recs.push_back(toolStart("s1", "read", ""));
  writeRecords(dir, recs);
  CHECK(findSnapshotRecord(dir.path, std::nullopt).snapshot() == "c2");
  CHECK(findSnapshotRecord(dir.path, std::nullopt, "s1").snapshot() == "c1");
  CHECK(findSnapshotRecord(dir.path, 2).arguments().size() == 200000);
  CHECK(findSnapshotRecord(dir.path, 1).snapshot() == "c0");
  // A torn last line is not a record yet: skipped, as read() skips it.
  std::string path = dir.path + "/audit.jsonl";
  {
    std::ofstream out(path, std::ios::app);
    out << "{\"seq\":\"9";
  }
  CHECK(findSnapshotRecord(dir.path, std::nullopt).snapshot() == "c2");
  // A damaged line older than the record found is not read; one on the way is named.
  auto ls = lines(readFile(path));
  ls.pop_back();  // the torn line
  REQUIRE(ls.size() == 504);
  ls[0] = "damaged";
  rewrite(dir, ls);
  CHECK(findSnapshotRecord(dir.path, 2).snapshot() == "c1");
  CHECK_THROWS_WITH_AS(findSnapshotRecord(dir.path, 1), doctest::Contains("line 1 "),
                       std::runtime_error);
}

TEST_CASE("audit log: normaliseSince accepts RFC 3339 forms and rejects others") {
  CHECK(normaliseSince("2024-05-01") == "2024-05-01T00:00:00.000Z");
  CHECK(normaliseSince("2024-05-01T12:30") == "2024-05-01T12:30:00.000Z");
  CHECK(normaliseSince("2024-05-01T12:30:15.5Z") == "2024-05-01T12:30:15.500Z");
  CHECK(normaliseSince("2024-05-01T00:30:00-01:00") == "2024-05-01T01:30:00.000Z");
  CHECK(normaliseSince("2024-05-01T00:30:00+01:00") == "2024-04-30T23:30:00.000Z");
  for (const char* bad : {"", "2024", "2024-13-01", "2024-05-01T25:00", "2024-05-01X", "5w",
                          "2024-05-01T12:00:00+0200"})
    CHECK_THROWS_AS(normaliseSince(bad), std::invalid_argument);
}

}  // namespace
}  // namespace chitin::audit
