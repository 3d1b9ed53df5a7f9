// SPDX-License-Identifier: Apache-2.0
// `chitin audit verify|tail|show` (see audit-cli.h).
// Runs in: supervisor binary, as the `chitin audit` command

#include "audit-cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "display-text.h"

namespace chitin::audit {

namespace {

constexpr char USAGE[] =
    "usage: chitin audit verify\n"
    "       chitin audit tail [-n N] [-f] [--json]\n"
    "       chitin audit show SEQ | --session KEY | --since TIME [--json]\n"
    "TIME: 2024-05-01, 2024-05-01T12:00:00Z, 2024-05-01T14:00+02:00, or 90s, 15m, 2h, 7d ago\n";

struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Text from the log may come from a model or a remote sender: a terminal escape sequence could
// rewrite what the auditor sees, a bidi control reorder it, an invisible character or a run of
// spaces hide part of it. Shown as display text (common/display-text.h), one line per field.
std::string printable(const std::string& in) { return displayLine(in); }
// Tool arguments are JSON text: its backslashes are JSON's escapes already.
std::string printableJson(const std::string& in) {
  return displayText(in, {DisplayLayout::LINE, DisplayBackslashes::AS_IS});
}

std::string orDash(const std::string& s) { return s.empty() ? "-" : printable(s); }

// One line of the file: its number, its exact text, and the record if it parses.
struct LogLine {
  size_t number;
  std::string text;
  std::optional<Record> record;
  std::string error;
};

// Reads complete lines of `path` from byte `offset` on; advances `offset` past the last
// complete line (an incomplete one is being written: it is read on a later call).
std::vector<LogLine> readLines(const std::string& path, off_t& offset, size_t& lineNo) {
  std::vector<LogLine> out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return out;
    throw std::runtime_error("cannot open " + path + ": " + strerror(errno));
  }
  std::string content;
  char buf[65536];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), offset + static_cast<off_t>(content.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + strerror(err));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t pos = 0;
  for (size_t nl; (nl = content.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    LogLine line{++lineNo, content.substr(pos, nl - pos), std::nullopt, ""};
    try {
      line.record = parseLine(line.text);
    } catch (const std::exception& e) {
      line.error = e.what();
    }
    out.push_back(std::move(line));
  }
  offset += static_cast<off_t>(pos);
  return out;
}

// Prints one line; returns false if it is not a valid record (which is printed as such: a
// reader of the log must never have a line skipped silently).
bool printLine(const LogLine& line, bool json, bool detail, std::ostream& out) {
  if (json) {
    out << line.text << "\n";
  } else if (!line.record) {
    out << "line " << line.number << ": not a valid audit record (" << printable(line.error)
        << ")\n";
  } else {
    out << (detail ? formatDetail(*line.record) : formatSummary(*line.record) + "\n");
  }
  return line.record.has_value();
}

uint64_t parseNumber(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError(what + " must be a number, not '" + s + "'");
  return std::stoull(s);
}

int cmdVerify(const std::vector<std::string>& args, const std::string& dir, std::ostream& out,
              std::ostream& err) {
  if (args.size() > 1) throw UsageError("verify takes no arguments");
  VerifyResult r = verify(dir);
  if (r.ok) {
    out << "ok: " << r.records << " records, head seq " << r.headSeq << " sha256 " << r.headHash
        << "\n";
    return 0;
  }
  if (r.badLine == 0)
    err << "audit log not verified: " << r.reason << "\n";
  else
    err << "audit log broken at line " << r.badLine << " (seq " << r.badSeq << "): " << r.reason
        << "\n";
  return 1;
}

volatile sig_atomic_t interrupted = 0;
extern "C" void onSigint(int) { interrupted = 1; }

int cmdTail(const std::vector<std::string>& args, const std::string& dir, std::ostream& out,
            std::ostream& err, const std::function<bool()>* stop, int pollMillis) {
  size_t count = 20;
  bool follow = false, json = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-n" || a == "--lines") {
      if (++i == args.size()) throw UsageError(a + " needs a number");
      count = parseNumber(args[i], a);
    } else if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (a == "--json") {
      json = true;
    } else {
      throw UsageError("tail: unknown argument '" + a + "'");
    }
  }
  std::string path = dir + "/" + LOG_FILE_NAME;
  off_t offset = 0;
  size_t lineNo = 0;
  bool allValid = true;
  auto lines = readLines(path, offset, lineNo);
  if (lines.empty() && !follow && ::access(path.c_str(), F_OK) < 0)
    err << "no audit log yet at " << path << "\n";
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    allValid &= printLine(lines[i], json, false, out);
  out.flush();
  if (!follow) return allValid ? 0 : 1;

  struct sigaction sa = {}, old = {};
  if (!stop) {
    interrupted = 0;
    sa.sa_handler = onSigint;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old);
  }
  for (;;) {
    if (stop ? (*stop)() : interrupted != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(pollMillis));
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size < offset) {
      err << "audit log " << path << " became shorter: it was truncated or replaced; "
          << "reading it from the start\n";
      offset = 0;
      lineNo = 0;
    }
    for (auto& line : readLines(path, offset, lineNo))
      allValid &= printLine(line, json, false, out);
    out.flush();
  }
  if (!stop) ::sigaction(SIGINT, &old, nullptr);
  return allValid ? 0 : 1;
}

int cmdShow(const std::vector<std::string>& args, const std::string& dir, std::ostream& out,
            std::ostream& err) {
  std::optional<uint64_t> seq;
  std::string session, since;
  bool json = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--session" || a == "--since") {
      if (++i == args.size()) throw UsageError(a + " needs a value");
      (a == "--session" ? session : since) = args[i];
    } else if (a == "--json") {
      json = true;
    } else if (!a.empty() && a[0] != '-' && !seq) {
      seq = parseNumber(a, "SEQ");
    } else {
      throw UsageError("show: unknown argument '" + a + "'");
    }
  }
  if (!seq && session.empty() && since.empty())
    throw UsageError("show needs SEQ, --session KEY or --since TIME");
  if (seq && (!session.empty() || !since.empty()))
    throw UsageError("show takes SEQ or --session/--since, not both");
  if (!since.empty()) {
    try {
      since = normaliseSince(since);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  off_t offset = 0;
  size_t lineNo = 0;
  bool allValid = true, any = false;
  for (auto& line : readLines(dir + "/" + LOG_FILE_NAME, offset, lineNo)) {
    if (line.record) {
      const Record& r = *line.record;
      if (seq && r.seq() != *seq) continue;
      if (!session.empty() && r.session() != session) continue;
      if (!since.empty() && r.time() < since) continue;
    } else {
      allValid = false;  // cannot tell whether it matches: show it
    }
    if (any && !json) out << "\n";
    printLine(line, json, true, out);
    any = true;
  }
  if (!any) {
    err << "no matching audit records\n";
    return 1;
  }
  return allValid ? 0 : 1;
}

int run(const std::vector<std::string>& args, const std::string& dir, std::ostream& out,
        std::ostream& err, const std::function<bool()>* stop, int pollMillis) {
  if (args.empty()) {
    err << USAGE;
    return 2;
  }
  try {
    const std::string& cmd = args[0];
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      out << USAGE;
      return 0;
    }
    if (cmd == "verify") return cmdVerify(args, dir, out, err);
    if (cmd == "tail") return cmdTail(args, dir, out, err, stop, pollMillis);
    if (cmd == "show") return cmdShow(args, dir, out, err);
    throw UsageError("unknown command 'audit " + cmd + "'");
  } catch (const UsageError& e) {
    err << "chitin audit: " << e.what() << "\n" << USAGE;
    return 2;
  } catch (const std::exception& e) {
    err << "chitin audit: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

std::string formatSummary(const Record& r) {
  std::ostringstream s;
  s << r.seq() << " " << orDash(r.time()) << " " << Kind_Name(r.kind()) << " "
    << orDash(r.session()) << " " << orDash(r.principal()) << " " << orDash(r.tool()) << " "
    << orDash(r.outcome()) << " ";
  if (r.has_decision() && !r.decision().outcome().empty()) {
    s << r.decision().outcome();
    if (r.decision().policies_size() > 0) {
      s << "(";
      for (int i = 0; i < r.decision().policies_size(); ++i)
        s << (i ? "," : "") << r.decision().policies(i);
      s << ")";
    }
  } else {
    s << "-";
  }
  if (!r.snapshot().empty()) s << " snapshot=" << printable(r.snapshot().substr(0, 12));
  if (!r.approval_id().empty()) s << " approval=" << printable(r.approval_id());
  if (r.files_size() > 0) s << " files=" << r.files_size();
  if (r.kind() == EGRESS) {
    s << " " << printable(r.worker()) << " -> " << printable(r.host()) << ":" << r.port();
    if (!r.address().empty()) s << " (" << printable(r.address()) << ")";
    s << " up=" << r.bytes_up() << " down=" << r.bytes_down() << " ms=" << r.duration_ms();
  }
  if (!r.detail().empty()) s << " \"" << displayCut(r.detail(), 80).text << "\"";
  return s.str();
}

std::string formatDetail(const Record& r) {
  std::ostringstream s;
  s << "seq " << r.seq() << "  " << r.time() << "  " << Kind_Name(r.kind()) << "\n";
  auto field = [&](const char* name, const std::string& value) {
    if (!value.empty()) s << "  " << name << printable(value) << "\n";
  };
  field("session:   ", r.session());
  field("principal: ", r.principal());
  field("run:       ", r.run_id());
  field("tool:      ", r.tool());
  field("call:      ", r.call_id());
  if (!r.arguments().empty()) s << "  arguments: " << printableJson(r.arguments()) << "\n";
  if (r.has_decision()) {
    const Decision& d = r.decision();
    s << "  decision:  " << orDash(d.outcome()) << "\n";
    for (auto& p : d.policies()) s << "    policy:  " << printable(p) << "\n";
    for (auto& e : d.errors()) s << "    error:   " << printable(e) << "\n";
  }
  field("worker:    ", r.worker());
  if (!r.host().empty() || r.port() != 0) {
    s << "  host:      " << printable(r.host()) << ":" << r.port() << "\n";
  }
  field("address:   ", r.address());
  if (r.kind() == EGRESS) {
    s << "  bytes:     " << r.bytes_up() << " up, " << r.bytes_down() << " down\n";
    s << "  duration:  " << r.duration_ms() << " ms\n";
  }
  field("approval:  ", r.approval_id());
  field("outcome:   ", r.outcome());
  field("detail:    ", r.detail());
  field("snapshot:  ", r.snapshot());
  for (auto& f : r.files())
    s << "  file:      " << printable(f.path()) << "  "
      << (f.before().empty() ? "(absent)" : printable(f.before())) << " -> "
      << (f.after().empty() ? "(absent)" : printable(f.after())) << "\n";
  field("prev:      ", r.prev());
  return s.str();
}

int auditCommand(const std::vector<std::string>& args, const std::string& auditDir,
                 std::ostream& out, std::ostream& err) {
  return run(args, auditDir, out, err, nullptr, 200);
}

int auditCommand(const std::vector<std::string>& args, const std::string& auditDir,
                 std::ostream& out, std::ostream& err, const std::function<bool()>& stop,
                 int pollMillis) {
  return run(args, auditDir, out, err, &stop, pollMillis);
}

}  // namespace chitin::audit
