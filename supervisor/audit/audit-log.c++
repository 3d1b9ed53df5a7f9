// SPDX-License-Identifier: Apache-2.0
// The hash-chained audit log (see audit-log.h and proto/audit.proto).
// Runs in: supervisor

#include "audit-log.h"

#include <spdlog/spdlog.h>

#include <errno.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <kj/common.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>

#include "proto-json.h"

namespace chitin::audit {

namespace {

[[noreturn]] void throwLogErrno(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error("audit log: " + what + " " + path + ": " + strerror(err));
}

std::string rfc3339(int64_t millisSinceEpoch) {
  time_t secs = static_cast<time_t>(millisSinceEpoch / 1000);
  int millis = static_cast<int>(millisSinceEpoch % 1000);
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

int64_t nowMillis() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
}

// Reads the whole file. Returns false if it does not exist; throws on any other error.
bool readWholeFile(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    throwLogErrno("cannot open", path, errno);
  }
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throwLogErrno("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

void makeDirs(const std::string& dir) {
  if (dir.empty()) throw std::runtime_error("audit log: empty directory name");
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) < 0 && errno != EEXIST)
      throwLogErrno("cannot create", part, errno);
    if (pos == std::string::npos) break;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) < 0) throwLogErrno("cannot stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("audit log: " + dir + " is not a directory");
}

// The chain check, a line at a time, shared by verify() and AuditLog's check of the chain it
// opened. Keeps going after the first problem so that the head (the last line's hash and seq) is
// learnt regardless.
class ChainCheck {
 public:
  ChainCheck() { r_.headHash = GENESIS_HASH; }

  void line(std::string_view line, bool complete) {
    ++lineNo_;
    std::string hash = sha256Hex(line);
    Record rec;
    bool parsed = false;
    try {
      rec = parseLine(line);
      parsed = true;
    } catch (const std::exception& e) {
      if (complete) fail(0, std::string("not a valid record: ") + e.what());
    }
    if (!complete) {
      fail(parsed ? rec.seq() : 0,
           "incomplete last line (a write torn by a crash; never acknowledged)");
    } else if (parsed) {
      if (rec.seq() != prevSeq_ + 1) {
        fail(rec.seq(), "seq " + std::to_string(rec.seq()) + " follows seq " +
                            std::to_string(prevSeq_) + " (expected " +
                            std::to_string(prevSeq_ + 1) + ")");
      } else if (rec.prev() != prevHash_) {
        fail(rec.seq(), lineNo_ == 1 ? "prev is not the genesis hash"
                                     : "prev does not match the SHA-256 of line " +
                                           std::to_string(lineNo_ - 1) +
                                           " (a record before it was changed, removed or moved)");
      }
    }
    if (parsed) {
      prevSeq_ = rec.seq();
      r_.headSeq = rec.seq();
    }
    if (r_.ok) ++r_.records;
    prevHash_ = hash;
    r_.headHash = hash;
  }

  const VerifyResult& result() const { return r_; }

 private:
  void fail(uint64_t seq, std::string why) {
    if (!r_.ok) return;
    r_.ok = false;
    r_.badLine = lineNo_;
    r_.badSeq = seq;
    r_.reason = std::move(why);
  }

  VerifyResult r_;
  std::string prevHash_ = GENESIS_HASH;
  uint64_t prevSeq_ = 0;
  size_t lineNo_ = 0;
};

// The chain check over the first `length` bytes of `fd`, read in pieces (a log of any size costs
// no more memory than its longest line). Stops early, not ok, when `stop` becomes true.
VerifyResult scanFile(int fd, const std::string& path, off_t length,
                      const std::atomic<bool>* stop) {
  ChainCheck check;
  std::string pending;  // the start of a line whose end is not read yet
  char buf[65536];
  off_t at = 0;
  while (at < length) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      VerifyResult stopped = check.result();
      stopped.ok = false;
      stopped.reason = "the check was stopped";
      return stopped;
    }
    size_t want = static_cast<size_t>(std::min<off_t>(sizeof(buf), length - at));
    ssize_t n = ::pread(fd, buf, want, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwLogErrno("cannot read", path, errno);
    if (n == 0) break;  // shorter than it was
    at += n;
    std::string_view piece(buf, static_cast<size_t>(n));
    size_t pos = 0;
    for (size_t nl; (nl = piece.find('\n', pos)) != std::string_view::npos; pos = nl + 1) {
      if (pending.empty()) {
        check.line(piece.substr(pos, nl - pos), true);
      } else {
        pending.append(piece.substr(pos, nl - pos));
        check.line(pending, true);
        pending.clear();
      }
    }
    pending.append(piece.substr(pos));
  }
  if (!pending.empty()) check.line(pending, false);
  return check.result();
}

// Calls fn(line, at) for each complete line of the first `size` bytes of `fd`, the last first
// (`at`: the offset of its '\n'), until fn returns true; reads backwards in pieces, so a long log
// costs what the lines visited cost. An incomplete last line is not a record yet and is skipped
// (as forEachCompleteLine does).
template <typename F>
void forEachLineBackwards(int fd, const std::string& path, off_t size, F&& fn) {
  std::string carry;     // the end of a line whose start is in a piece not read yet
  off_t newlineAt = -1;  // of the line in `carry`; -1 until the file's last '\n' is seen
  char buf[65536];
  for (off_t at = size; at > 0;) {
    size_t n = static_cast<size_t>(std::min<off_t>(sizeof(buf), at));
    at -= static_cast<off_t>(n);
    for (size_t got = 0; got < n;) {
      ssize_t r = ::pread(fd, buf + got, n - got, at + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throwLogErrno("cannot read", path, errno);
      if (r == 0) throw std::runtime_error("audit log: " + path + " shrank while being read");
      got += static_cast<size_t>(r);
    }
    std::string_view piece(buf, n);
    size_t end = n;  // piece[end..] belongs to the line in `carry`
    for (size_t i = n; i-- > 0;) {
      if (buf[i] != '\n') continue;
      if (newlineAt >= 0 && fn(std::string(piece.substr(i + 1, end - i - 1)) + carry, newlineAt))
        return;
      // (what follows the file's last newline is an incomplete line: dropped)
      newlineAt = at + static_cast<off_t>(i);
      carry.clear();
      end = i;
    }
    carry.insert(0, piece.substr(0, end));
  }
  if (newlineAt >= 0) fn(carry, newlineAt);  // the first line
}

template <typename F>
void forEachCompleteLine(const std::string& content, F&& fn) {
  size_t pos = 0, lineNo = 0;
  for (;;) {
    size_t nl = content.find('\n', pos);
    // An incomplete last line is not a record yet: it is being written, or a crash tore it (the
    // supervisor cuts it off when it next opens the log; verify() reports it).
    if (nl == std::string::npos) return;
    ++lineNo;
    fn(lineNo, std::string_view(content.data() + pos, nl - pos));
    pos = nl + 1;
  }
}

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

int num(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::string sha256Hex(std::string_view bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  static const char HEX[] = "0123456789abcdef";
  std::string out(2 * sizeof(digest), '0');
  for (size_t i = 0; i < sizeof(digest); ++i) {
    out[2 * i] = HEX[digest[i] >> 4];
    out[2 * i + 1] = HEX[digest[i] & 0xf];
  }
  return out;
}

std::string nowRfc3339() { return rfc3339(nowMillis()); }

std::string normaliseSince(const std::string& since) {
  auto bad = [&]() -> std::invalid_argument {
    return std::invalid_argument("bad time '" + since +
                                 "': use RFC 3339 (2024-05-01, 2024-05-01T12:00:00Z, "
                                 "2024-05-01T14:00+02:00) or a duration (90s, 15m, 2h, 7d)");
  };
  std::string_view s = since;
  if (s.size() >= 2 && allDigits(s.substr(0, s.size() - 1)) && s.size() <= 10) {
    int64_t n = std::stoll(std::string(s.substr(0, s.size() - 1)));
    int64_t unit = 0;
    switch (s.back()) {
      case 's':
        unit = 1000;
        break;
      case 'm':
        unit = 60 * 1000;
        break;
      case 'h':
        unit = 3600 * 1000;
        break;
      case 'd':
        unit = 86400 * 1000;
        break;
      default:
        throw bad();
    }
    return rfc3339(nowMillis() - n * unit);
  }
  // YYYY-MM-DD
  if (s.size() < 10 || !allDigits(s.substr(0, 4)) || s[4] != '-' || !allDigits(s.substr(5, 2)) ||
      s[7] != '-' || !allDigits(s.substr(8, 2)))
    throw bad();
  struct tm tm = {};
  tm.tm_year = num(s.substr(0, 4)) - 1900;
  tm.tm_mon = num(s.substr(5, 2)) - 1;
  tm.tm_mday = num(s.substr(8, 2));
  int millis = 0;
  int64_t offsetSecs = 0;
  s.remove_prefix(10);
  if (!s.empty()) {
    if (s[0] != 'T' && s[0] != 't' && s[0] != ' ') throw bad();
    s.remove_prefix(1);
    if (s.size() < 5 || !allDigits(s.substr(0, 2)) || s[2] != ':' || !allDigits(s.substr(3, 2)))
      throw bad();
    tm.tm_hour = num(s.substr(0, 2));
    tm.tm_min = num(s.substr(3, 2));
    s.remove_prefix(5);
    if (!s.empty() && s[0] == ':') {
      if (s.size() < 3 || !allDigits(s.substr(1, 2))) throw bad();
      tm.tm_sec = num(s.substr(1, 2));
      s.remove_prefix(3);
      if (!s.empty() && s[0] == '.') {
        s.remove_prefix(1);
        size_t n = 0;
        while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
        if (n == 0) throw bad();
        std::string frac(s.substr(0, std::min<size_t>(n, 3)));
        frac.resize(3, '0');
        millis = num(frac);
        s.remove_prefix(n);
      }
    }
    if (s == "Z" || s == "z") {
      s = "";
    } else if (s.size() == 6 && (s[0] == '+' || s[0] == '-') && allDigits(s.substr(1, 2)) &&
               s[3] == ':' && allDigits(s.substr(4, 2))) {
      offsetSecs = (num(s.substr(1, 2)) * 3600 + num(s.substr(4, 2)) * 60) * (s[0] == '+' ? 1 : -1);
      s = "";
    }
    if (!s.empty()) throw bad();
  }
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    throw bad();
  int64_t secs = static_cast<int64_t>(timegm(&tm)) - offsetSecs;
  return rfc3339(secs * 1000 + millis);
}

// No whitespace, default values omitted, lowerCamelCase like gateway.proto's frames: protobuf's
// JSON mapping, printed by protojson (two records per tool call; the library's printer was a
// tenth of the supervisor's time in a turn with a tool call).
std::string toLine(const Record& record) { return protojson::print(record); }

Record parseLine(std::string_view line) {
  google::protobuf::util::JsonParseOptions options;
  // Fields added by a newer chitin are still covered by the hash; an older reader skips them.
  options.ignore_unknown_fields = true;
  Record rec;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &rec, options);
  if (!status.ok()) throw std::runtime_error(std::string(status.message()));
  return rec;
}

// ---------------------------------------------------------------------------------------------

AuditLog::AuditLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(verifyMutex_);
    stopVerifying_ = true;
  }
  verifyStopCv_.notify_all();
  if (verifier_.joinable()) verifier_.join();
  {
    std::lock_guard<std::mutex> lock(syncMutex_);
    stopSyncing_ = true;  // the requests still waiting get their sync first
  }
  syncWanted_.notify_one();
  if (syncer_.joinable()) syncer_.join();
  ::close(fd_);
}

std::unique_ptr<AuditLog> AuditLog::open(const std::string& dir,
                                         std::chrono::milliseconds verifyAfter) {
  if (sodium_init() < 0) throw std::runtime_error("audit log: sodium_init failed");
  makeDirs(dir);
  std::string path = dir + "/" + LOG_FILE_NAME;
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throwLogErrno("cannot open", path, errno);
  std::unique_ptr<AuditLog> log(new AuditLog(path, fd));
  log->verifyAfter_ = verifyAfter;
  if (::flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      throw std::runtime_error("audit log: " + path +
                               " is already open for appending (another supervisor?)");
    throwLogErrno("cannot lock", path, errno);
  }
  log->recover();
  return log;
}

void AuditLog::recover() {
  struct stat st;
  if (::fstat(fd_, &st) < 0) throwLogErrno("cannot stat", path_, errno);
  const off_t size = st.st_size;
  // Only the tail is read here: the last complete line (the head of the chain, which appends
  // continue from) and what follows it. Reading and checking the whole log at every start made
  // start-up grow with the log (which only grows); the whole chain is checked on a thread of its
  // own instead, below.
  off_t keep = 0;
  std::string last;
  forEachLineBackwards(fd_, path_, size, [&](const std::string& line, off_t newlineAt) {
    keep = newlineAt + 1;
    last = line;
    return true;
  });
  size_t dropped = static_cast<size_t>(size - keep);
  if (dropped > 0) {
    if (::ftruncate(fd_, keep) < 0) throwLogErrno("cannot truncate", path_, errno);
    if (::fdatasync(fd_) < 0) throwLogErrno("cannot sync", path_, errno);
  }
  size_ = keep;
  std::optional<VerifyResult> scanned;  // the whole chain, when finding its head took a scan
  if (keep > 0) {
    try {
      lastSeq_ = parseLine(last).seq();
      lastHash_ = sha256Hex(last);
    } catch (const std::exception&) {
      // The last line is not a record: the head is then what the whole scan finds (the last
      // record's seq, the last line's hash), as the chain check reports it.
      scanned = scanFile(fd_, path_, keep, nullptr);
      lastSeq_ = scanned->headSeq;
      lastHash_ = scanned->headHash;
    }
  }
  auto describe = [this](const VerifyResult& r) {
    return r.ok ? std::string()
                : "audit log " + path_ + " broken at line " + std::to_string(r.badLine) + " (seq " +
                      std::to_string(r.badSeq) + "): " + r.reason;
  };
  if (scanned) {
    settleVerification(describe(*scanned));  // that scan was the check: no second one
  } else {
    // Started with every signal blocked (signals are the event loop's to take, as for the
    // snapshot thread), and at a lower priority than the loop it shares the machine with.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    KJ_DEFER(pthread_sigmask(SIG_SETMASK, &old, nullptr));
    verifier_ = std::thread([this, keep, describe] {
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
      if (verifyAfter_.count() > 0) {
        std::unique_lock<std::mutex> lock(verifyMutex_);
        verifyStopCv_.wait_for(lock, verifyAfter_, [this] { return stopVerifying_.load(); });
      }
      std::string problem;
      try {
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throwLogErrno("cannot open", path_, errno);
        KJ_DEFER(::close(fd));
        VerifyResult r = scanFile(fd, path_, keep, &stopVerifying_);
        if (!stopVerifying_) problem = describe(r);
      } catch (const std::exception& e) {
        problem = e.what();
      }
      settleVerification(std::move(problem));
    });
  }
  if (dropped > 0) {
    Record rec;
    rec.set_kind(LOG_RECOVERED);
    rec.set_outcome("recovered");
    rec.set_detail("cut off an incomplete last line of " + std::to_string(dropped) +
                   " bytes (a write torn by a crash; it was never acknowledged)");
    append(std::move(rec), true);
  }
}

void AuditLog::settleVerification(std::string problem) {
  if (!problem.empty()) {
    spdlog::error(
        "THE AUDIT LOG DOES NOT VERIFY: {} (appending continues; run `chitin audit verify` and "
        "keep a copy of {})",
        problem, path_);
  }
  std::lock_guard<std::mutex> lock(verifyMutex_);
  openProblem_ = std::move(problem);
  verified_ = true;
  verifiedCv_.notify_all();
}

uint64_t AuditLog::appendOrLog(Record record, bool sync) noexcept {
  try {
    return append(std::move(record), sync);
  } catch (const std::exception& e) {
    spdlog::error("audit log: {}", e.what());
    return 0;
  }
}

uint64_t AuditLog::append(Record record, bool sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_)
    throw std::runtime_error("audit log: " + path_ +
                             " refuses appends after a failed write could not be undone");
  record.set_seq(lastSeq_ + 1);
  record.set_time(nowRfc3339());
  record.set_prev(lastHash_);
  std::string line = toLine(record);
  std::string buf = line + '\n';
  size_t done = 0;
  while (done < buf.size()) {
    // One write() normally; the loop only matters for short writes (e.g. a signal).
    ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      // Cut off the partial line so the next append does not glue onto it.
      if (done > 0 || n < 0) {
        if (::ftruncate(fd_, size_) < 0) failed_ = true;
      }
      throwLogErrno("cannot append to", path_, err);
    }
    done += static_cast<size_t>(n);
  }
  size_ += static_cast<off_t>(buf.size());
  lastSeq_ = record.seq();
  lastHash_ = sha256Hex(line);
  if (sync && ::fdatasync(fd_) < 0) throwLogErrno("cannot sync", path_, errno);
  return lastSeq_;
}

kj::Promise<void> AuditLog::syncAsync() {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard<std::mutex> lock(syncMutex_);
    if (!syncer_.joinable()) {
      // Signals stay with the event loop, as for the verifier.
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      KJ_DEFER(pthread_sigmask(SIG_SETMASK, &old, nullptr));
      syncer_ = std::thread([this] { syncLoop(); });
    }
    syncWaiting_.push_back(kj::mv(paf.fulfiller));
  }
  syncWanted_.notify_one();
  return kj::mv(paf.promise);
}

void AuditLog::syncLoop() {
  for (;;) {
    std::vector<kj::Own<kj::CrossThreadPromiseFulfiller<void>>> batch;
    {
      std::unique_lock<std::mutex> lock(syncMutex_);
      syncWanted_.wait(lock, [this] { return stopSyncing_ || !syncWaiting_.empty(); });
      if (syncWaiting_.empty()) return;  // stopping, and nobody waits
      batch.swap(syncWaiting_);
    }
    // Each request in the batch came after its records' write() had returned: this sync, begun
    // after all of them, covers them. (write() and fdatasync() on one file from two threads are
    // safe; the append lock is not needed.)
    int error = ::fdatasync(fd_) < 0 ? errno : 0;
    for (auto& waiting : batch) {
      if (error == 0) {
        waiting->fulfill();
      } else {
        std::string why = "audit log: cannot sync " + path_ + ": " + strerror(error);
        waiting->reject(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                      kj::heapString(why.data(), why.size())));
      }
    }
  }
}

uint64_t AuditLog::lastSeq() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lastSeq_;
}

std::string AuditLog::openProblem() const {
  std::unique_lock<std::mutex> lock(verifyMutex_);
  verifiedCv_.wait(lock, [this] { return verified_; });
  return openProblem_;
}

const std::string& AuditLog::path() const { return path_; }

// ---------------------------------------------------------------------------------------------

VerifyResult verify(const std::string& dir) {
  std::string path = dir + "/" + LOG_FILE_NAME;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) throwLogErrno("cannot open", path, errno);
    VerifyResult r;
    r.ok = false;
    r.reason = "no audit log at " + path;
    return r;
  }
  KJ_DEFER(::close(fd));
  struct stat st;
  if (::fstat(fd, &st) < 0) throwLogErrno("cannot stat", path, errno);
  return scanFile(fd, path, st.st_size, nullptr);
}

std::vector<Record> read(const std::string& dir, const Filter& filter) {
  std::string since = filter.since.empty() ? "" : normaliseSince(filter.since);
  std::string path = dir + "/" + LOG_FILE_NAME;
  std::string content;
  std::vector<Record> out;
  if (!readWholeFile(path, content)) return out;
  forEachCompleteLine(content, [&](size_t lineNo, std::string_view line) {
    Record rec;
    try {
      rec = parseLine(line);
    } catch (const std::exception& e) {
      throw std::runtime_error("audit log " + path + " line " + std::to_string(lineNo) +
                               " is not a valid record: " + e.what());
    }
    if (filter.seq && rec.seq() != *filter.seq) return;
    if (!filter.session.empty() && rec.session() != filter.session) return;
    if (!since.empty() && rec.time() < since) return;
    if (filter.kind && rec.kind() != *filter.kind) return;
    out.push_back(std::move(rec));
  });
  return out;
}

Record findSnapshotRecord(const std::string& dir, std::optional<uint64_t> seq,
                          const std::string& session) {
  // Read from the end: what is asked for is nearly always recent, and a rollback (run on the
  // gateway's loop) must not cost a parse of the whole log. Lines older than the one found are
  // not read; a line on the way that is not a record sends it to read(), which names it.
  std::string path = dir + "/" + LOG_FILE_NAME;
  std::optional<Record> found;
  bool unreadable = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) throwLogErrno("cannot open", path, errno);
  if (fd >= 0) {  // (a missing log holds no record)
    KJ_DEFER(::close(fd));
    struct stat st;
    if (::fstat(fd, &st) < 0) throwLogErrno("cannot stat", path, errno);
    forEachLineBackwards(fd, path, st.st_size, [&](const std::string& line, off_t) {
      Record rec;
      try {
        rec = parseLine(line);
      } catch (const std::exception&) {
        unreadable = true;
        return true;
      }
      if (seq ? rec.seq() != *seq : rec.kind() != TOOL_START || rec.snapshot().empty())
        return false;
      if (!session.empty() && rec.session() != session) return false;
      found = std::move(rec);
      return true;
    });
  }
  if (unreadable) {
    Filter filter;
    filter.seq = seq;
    filter.session = session;
    read(dir, filter);  // throws, naming the line
  }
  std::string inSession = session.empty() ? "" : " in session " + session;
  if (seq) {
    if (!found)
      throw std::invalid_argument("no audit record with seq " + std::to_string(*seq) + inSession);
    const Record& rec = *found;
    if (rec.kind() != TOOL_START)
      throw std::invalid_argument("audit record " + std::to_string(*seq) + " is a " +
                                  Kind_Name(rec.kind()) + " record, not a TOOL_START");
    if (rec.snapshot().empty())
      throw std::invalid_argument("audit record " + std::to_string(*seq) + " (" + rec.tool() +
                                  ") has no snapshot: that tool call was not taken as mutating");
    return rec;
  }
  if (found) return *found;
  throw std::invalid_argument("no tool call with a workspace snapshot in the audit log" +
                              inSession);
}

}  // namespace chitin::audit
