// SPDX-License-Identifier: Apache-2.0
// The memory index (see memory-index.h).
// Runs in: the memory worker (sandboxed)

#include "memory-index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

#include "memory-path.h"
#include "utf8.h"

namespace chitin {

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("memory index: ") + sqlite3_errmsg(db) + " in: " + sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // true while there is a row; throws on an error.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("memory index: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  double real(int col) { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Change detection only (not security): FNV-1a, 64 bits.
std::string contentHash(const std::string& content) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : content) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int64_t changeTimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
}

// The file beneath `rootFd` opened for reading without following any symlink on the way, or -1.
int openNoFollow(int rootFd, const std::string& rel, int flags) {
  int fd = rootFd;
  bool own = false;
  size_t start = 0;
  while (true) {
    size_t slash = rel.find('/', start);
    bool last = slash == std::string::npos;
    std::string part = rel.substr(start, last ? std::string::npos : slash - start);
    int next =
        openat(fd, part.c_str(), (last ? flags : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    if (own) close(fd);
    errno = saved;
    if (next < 0) return -1;
    if (last) return next;
    fd = next;
    own = true;
    start = slash + 1;
  }
}

void walk(int dirFd, const std::string& prefix, std::vector<std::string>& out) {
  int fd = dup(dirFd);
  if (fd < 0) return;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return;
  }
  while (struct dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    std::string rel = prefix + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        walk(sub, rel, out);
        close(sub);
      }
    } else if (isIndexedMemoryFile(rel) && out.size() < MemoryIndex::MAX_FILES) {
      out.push_back(rel);  // symlinks too: update() skips them by name, status() counts them
    }
  }
  closedir(dir);
}

bool readAll(int fd, uint64_t limit, std::string& out) {
  out.clear();
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return false;
  }
}

struct Chunk {
  uint32_t start, end;
  std::string text;
};

std::vector<Chunk> chunksOf(const std::string& content) {
  std::vector<Chunk> chunks;
  uint32_t line = 0;
  size_t pos = 0;
  Chunk current{0, 0, ""};
  auto flush = [&]() {
    if (!current.text.empty()) chunks.push_back(current);
    current = Chunk{0, 0, ""};
  };
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    std::string text = content.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? content.size() : nl + 1;
    ++line;
    bool blank = text.find_first_not_of(" \t\r") == std::string::npos;
    // A heading starts a chunk of its own: it belongs with what follows it.
    if (blank || (text.rfind("#", 0) == 0 && !current.text.empty())) flush();
    if (blank) continue;
    if (current.text.empty()) current.start = line;
    current.end = line;
    current.text += (current.text.empty() ? "" : "\n") + text;
    if (current.end - current.start + 1 >= MemoryIndex::CHUNK_MAX_LINES) flush();
  }
  flush();
  return chunks;
}

struct Known {
  int64_t ctime, size, ino;
  std::string hash;
};

}  // namespace

std::vector<std::string> listMemoryFiles(int rootFd) {
  std::vector<std::string> out;
  struct stat st;
  if (fstatat(rootFd, MEMORY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) out.push_back(MEMORY_FILE);
  int dir = openat(rootFd, MEMORY_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir >= 0) {
    walk(dir, MEMORY_DIR, out);
    close(dir);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ftsQuery(const std::string& text, const char* joiner) {
  std::string out, word;
  auto flush = [&]() {
    if (word.empty()) return;
    out += (out.empty() ? "" : joiner) + ("\"" + word + "\"");
    word.clear();
  };
  for (unsigned char c : text) {
    // unicode61 keeps letters and digits (any byte >= 0x80 may be one) together; everything
    // else separates words, so quoting the rest keeps FTS5 syntax out of the model's hands.
    if (isalnum(c) || c >= 0x80 || c == '_') {
      word += static_cast<char>(c);
    } else {
      flush();
    }
  }
  flush();
  return out;
}

MemoryIndex::MemoryIndex(std::string indexPath, uint32_t lockTimeoutMs)
    : path_(std::move(indexPath)) {
  lock(lockTimeoutMs);
  try {
    open();
  } catch (...) {
    close(lockFd_);
    throw;
  }
}

MemoryIndex::~MemoryIndex() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
  if (lockFd_ >= 0) close(lockFd_);  // releases the flock
}

void MemoryIndex::lock(uint32_t timeoutMs) {
  std::string lockPath = path_ + ".lock";
  lockFd_ = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lockFd_ < 0)
    throw std::runtime_error("memory index lock " + lockPath +
                             " cannot be opened: " + strerror(errno));
  // Polled rather than blocking, so a wait has an end this process chooses (and a test can make
  // it short) instead of only the sandbox's wall clock.
  for (uint32_t waited = 0;; waited += 10) {
    if (flock(lockFd_, LOCK_EX | LOCK_NB) == 0) return;
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK || waited >= timeoutMs) {
      close(lockFd_);
      lockFd_ = -1;
      throw std::runtime_error(
          err == EWOULDBLOCK
              ? "the memory index is busy: another memory call (the gateway's or `chitin "
                "memory`) held " +
                    lockPath + " for more than " + std::to_string(timeoutMs / 1000) + " s"
              : "memory index lock " + lockPath + ": " + strerror(err));
    }
    struct timespec tenMs {
      0, 10 * 1000 * 1000
    };
    nanosleep(&tenMs, nullptr);
  }
}

void MemoryIndex::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw std::runtime_error("memory index " + path_ + ": " + why);
  }
}

uint64_t MemoryIndex::countOf(const char* sql) {
  Statement s(db_, sql);
  return s.step() ? static_cast<uint64_t>(s.integer(0)) : 0;
}

std::string MemoryIndex::validate() {
  try {
    Statement version(db_, "PRAGMA user_version");
    int64_t v = version.step() ? version.integer(0) : -1;
    if (v == 0 && countOf("SELECT count(*) FROM sqlite_master") == 0) return "missing";
    if (v != SCHEMA_VERSION)
      return "schema version " + std::to_string(v) + " is not " + std::to_string(SCHEMA_VERSION);
    Statement check(db_, "PRAGMA quick_check");
    std::string verdict = check.step() ? check.text(0) : "";
    if (verdict != "ok") return "integrity check failed: " + verdict;
    countOf("SELECT count(*) FROM files");
    countOf("SELECT count(*) FROM meta");
    countOf("SELECT count(*) FROM chunks WHERE chunks MATCH '\"x\"'");
    exec("INSERT INTO chunks(chunks) VALUES('integrity-check')");
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

void MemoryIndex::open() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close_v2(db_);
      db_ = nullptr;
      if (attempt == 0 && unlink(path_.c_str()) == 0) continue;  // not a database file at all
      throw std::runtime_error("memory index " + path_ + " cannot be opened: " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
    std::string problem = validate();
    if (problem.empty()) return;
    if (problem == "missing") {
      rebuiltBecause_ = "the index did not exist";
    } else {
      // Derived data: a file that is not a valid index is replaced, never repaired or trusted.
      rebuiltBecause_ = "the index was not valid (" + problem + ")";
      sqlite3_close_v2(db_);
      db_ = nullptr;
      for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
      if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                          nullptr) != SQLITE_OK)
        throw std::runtime_error("memory index " + path_ + " cannot be created: " +
                                 (db_ ? sqlite3_errmsg(db_) : "out of memory"));
    }
    createSchema();
    return;
  }
}

void MemoryIndex::createSchema() {
  exec("PRAGMA temp_store=MEMORY");
  exec(
      "BEGIN;"
      "CREATE TABLE files(path TEXT PRIMARY KEY, ctime INTEGER, size INTEGER, ino INTEGER, "
      "hash TEXT);"
      "CREATE VIRTUAL TABLE chunks USING fts5(text, path UNINDEXED, start_line UNINDEXED, "
      "end_line UNINDEXED, tokenize='unicode61');"
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER);"
      "PRAGMA user_version=2;"
      "COMMIT;");
  static_assert(SCHEMA_VERSION == 2, "the schema above is version 2");
}

MemoryStats MemoryIndex::update(int rootFd) {
  MemoryStats stats;
  stats.rebuiltBecause = rebuiltBecause_;
  std::map<std::string, Known> known;
  {
    Statement s(db_, "SELECT path, ctime, size, ino, hash FROM files");
    while (s.step()) known[s.text(0)] = Known{s.integer(1), s.integer(2), s.integer(3), s.text(4)};
  }
  exec("BEGIN IMMEDIATE");
  size_t restamped = 0;
  try {
    Statement delChunks(db_, "DELETE FROM chunks WHERE path = ?");
    Statement delFile(db_, "DELETE FROM files WHERE path = ?");
    Statement putFile(db_,
                      "INSERT OR REPLACE INTO files(path, ctime, size, ino, hash) "
                      "VALUES(?, ?, ?, ?, ?)");
    Statement putChunk(db_,
                       "INSERT INTO chunks(text, path, start_line, end_line) "
                       "VALUES(?, ?, ?, ?)");
    auto forget = [&](const std::string& path) {
      delChunks.reset();
      delChunks.bind(1, path).step();
      delFile.reset();
      delFile.bind(1, path).step();
    };
    for (const auto& path : listMemoryFiles(rootFd)) {
      auto was = known.find(path);
      int fd = openNoFollow(rootFd, path, O_RDONLY | O_NONBLOCK);
      struct stat st;
      std::string content;
      bool usable = fd >= 0 && path.size() <= MAX_PATH_BYTES && fstat(fd, &st) == 0 &&
                    S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) <= MAX_FILE_BYTES;
      bool same = usable && was != known.end() && was->second.ctime == changeTimeNs(st) &&
                  was->second.size == st.st_size && was->second.ino == (int64_t)st.st_ino;
      if (usable && !same) usable = readAll(fd, MAX_FILE_BYTES, content);
      if (fd >= 0) close(fd);
      if (!usable) {
        ++stats.skipped;
        continue;  // left in `known`: removed below
      }
      if (same) {
        ++stats.unchanged;
        known.erase(was);
        continue;
      }
      std::string hash = contentHash(content);
      bool sameContent = was != known.end() && was->second.hash == hash;
      if (!sameContent) {
        if (was != known.end()) forget(path);
        for (const auto& chunk : chunksOf(content)) {
          putChunk.reset();
          putChunk.bind(1, chunk.text)
              .bind(2, path)
              .bind(3, static_cast<int64_t>(chunk.start))
              .bind(4, static_cast<int64_t>(chunk.end))
              .step();
        }
        ++(was == known.end() ? stats.added : stats.changed);
      } else {
        ++stats.unchanged;  // touched, not changed: only its stat is recorded again
        ++restamped;
      }
      putFile.reset();
      putFile.bind(1, path)
          .bind(2, changeTimeNs(st))
          .bind(3, static_cast<int64_t>(st.st_size))
          .bind(4, static_cast<int64_t>(st.st_ino))
          .bind(5, hash)
          .step();
      if (was != known.end()) known.erase(was);
    }
    for (const auto& [path, _] : known) {
      forget(path);
      ++stats.removed;
    }
    if (stats.added + stats.changed + stats.removed + restamped == 0 && rebuiltBecause_.empty()) {
      // Nothing changed: no write, so no journal and no fsync on a search's path.
      exec("ROLLBACK");
    } else {
      Statement stamp(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('updated_at', ?)");
      stamp.bind(1, static_cast<int64_t>(::time(nullptr))).step();
      exec("COMMIT");
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  rebuiltBecause_.clear();
  // Just brought up to date: what is on disk is what was read (no second scan of the files).
  MemoryStats now = counts();
  now.skipped = stats.skipped;
  now.added = stats.added;
  now.changed = stats.changed;
  now.removed = stats.removed;
  now.unchanged = stats.unchanged;
  now.rebuiltBecause = stats.rebuiltBecause;
  return now;
}

MemoryStats MemoryIndex::counts() {
  MemoryStats stats;
  stats.rebuiltBecause = rebuiltBecause_;
  stats.files = countOf("SELECT count(*) FROM files");
  stats.chunks = countOf("SELECT count(*) FROM chunks");
  stats.indexBytes = countOf(
      "SELECT page_count * page_size FROM pragma_page_count, "
      "pragma_page_size");
  stats.updatedAt =
      static_cast<int64_t>(countOf("SELECT value FROM meta WHERE key = 'updated_at'"));
  return stats;
}

MemoryStats MemoryIndex::status(int rootFd) {
  MemoryStats stats = counts();
  std::map<std::string, Known> known;
  {
    Statement s(db_, "SELECT path, ctime, size, ino FROM files");
    while (s.step()) known[s.text(0)] = Known{s.integer(1), s.integer(2), s.integer(3), ""};
  }
  for (const auto& path : listMemoryFiles(rootFd)) {
    struct stat st;
    int fd = openNoFollow(rootFd, path, O_RDONLY | O_NONBLOCK);
    bool usable = fd >= 0 && path.size() <= MAX_PATH_BYTES && fstat(fd, &st) == 0 &&
                  S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) <= MAX_FILE_BYTES;
    if (fd >= 0) close(fd);
    if (!usable) {
      ++stats.skipped;
      continue;
    }
    auto was = known.find(path);
    if (was == known.end()) {
      ++stats.added;
    } else {
      bool same = was->second.ctime == changeTimeNs(st) && was->second.size == st.st_size &&
                  was->second.ino == (int64_t)st.st_ino;
      ++(same ? stats.unchanged : stats.changed);
      known.erase(was);
    }
  }
  stats.removed = known.size();
  stats.stale = stats.added + stats.changed + stats.removed;
  return stats;
}

std::vector<MemoryHit> MemoryIndex::query(const std::string& match, uint32_t maxResults) {
  std::vector<MemoryHit> hits;
  Statement s(db_,
              "SELECT path, start_line, end_line, "
              "snippet(chunks, 0, '**', '**', '…', 24), bm25(chunks) "
              "FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks), path, start_line LIMIT ?");
  s.bind(1, match).bind(2, static_cast<int64_t>(maxResults));
  while (s.step()) {
    hits.push_back(MemoryHit{s.text(0), static_cast<uint32_t>(s.integer(1)),
                             static_cast<uint32_t>(s.integer(2)), s.text(3), s.real(4)});
  }
  return hits;
}

std::vector<MemoryHit> MemoryIndex::search(const std::string& text, uint32_t maxResults) {
  std::string all = ftsQuery(text, " ");
  if (all.empty())
    throw std::invalid_argument("the query \"" + text + "\" has no word to search for");
  auto hits = query(all, maxResults);
  if (hits.empty()) hits = query(ftsQuery(text, " OR "), maxResults);
  return hits;
}

std::string readMemoryLines(int rootFd, const std::string& path, uint32_t from, uint32_t lines,
                            std::string& error) {
  std::string problem = memoryPathProblem(path);
  if (!problem.empty()) {
    error = problem;
    return "";
  }
  int fd = openNoFollow(rootFd, path, O_RDONLY | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int saved = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    error = saved == ENOENT  ? "\"" + path + "\" does not exist"
            : saved == ELOOP ? "\"" + path +
                                   "\" is a symlink; memory files are read only as "
                                   "regular files"
                             : "\"" + path + "\" is not a readable regular file" +
                                   (saved ? std::string(" (") + strerror(saved) + ")" : "");
    return "";
  }
  std::string content;
  bool ok = readAll(fd, MemoryIndex::MAX_FILE_BYTES, content);
  close(fd);
  if (!ok) {
    error = "\"" + path + "\" cannot be read or is larger than 4 MiB";
    return "";
  }
  if (from < 1) from = 1;
  std::string out;
  uint32_t line = 0;
  size_t pos = 0;
  while (pos < content.size() && line < from - 1 + lines) {
    size_t nl = content.find('\n', pos);
    std::string text = content.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? content.size() : nl + 1;
    ++line;
    if (line >= from) out += std::to_string(line) + "\t" + text + "\n";
  }
  if (line < from) {
    error = "\"" + path + "\" has " + std::to_string(line) + " lines; line " +
            std::to_string(from) + " is past its end";
    return "";
  }
  return out;
}

std::string cutAtCharacter(const std::string& text, size_t max) {
  return text.substr(
      0, utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(text.data(), text.size()), max));
}

std::string boundedLines(const std::string& lines, size_t max) {
  if (lines.size() <= max) return lines;
  size_t room = max > 200 ? max - 200 : max / 2;  // for the note
  size_t end = lines.rfind('\n', room - 1);
  std::string kept =
      end == std::string::npos ? cutAtCharacter(lines, room) + "\n" : lines.substr(0, end + 1);
  return kept + "[cut at " + std::to_string(kept.size()) + " of " + std::to_string(lines.size()) +
         " bytes: read on from the next line]\n";
}

}  // namespace chitin
