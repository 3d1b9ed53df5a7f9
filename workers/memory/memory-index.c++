// SPDX-License-Identifier: Apache-2.0
// The memory index (see memory-index.h).
// Runs in: the memory worker (sandboxed)

#include "memory-index.h"

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
#include <string_view>
#include <unordered_map>
#include <utility>

#include "memory-sqlite.h"

namespace chitin {

namespace {

using memory_sqlite::fail;
using memory_sqlite::IndexDamaged;
using memory_sqlite::Statement;

// The schema's tables as SQLite keeps their definitions in sqlite_master (the cheap check
// compares them), and what SQLite adds beside them: FTS5's shadow tables and the primary keys'
// indexes, whose definitions are SQLite's to choose, so only their names are compared.
constexpr const char* OUR_TABLES[][2] = {
    {"files",
     "CREATE TABLE files(path TEXT PRIMARY KEY, ctime INTEGER, size INTEGER, ino INTEGER, "
     "hash TEXT, chunks INTEGER)"},
    {"chunks",
     "CREATE VIRTUAL TABLE chunks USING fts5(text, path UNINDEXED, start_line UNINDEXED, "
     "end_line UNINDEXED, hash UNINDEXED, tokenize='unicode61')"},
    {"meta", "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER)"},
    {"scan", "CREATE TABLE scan(records BLOB)"},
    // Embeddings of chunk texts (memory-vectors.c++), by the text's hash, so an edit elsewhere
    // in a file keeps its other chunks' vectors; all of the one model `vector_model` names.
    {"vectors", "CREATE TABLE vectors(hash TEXT PRIMARY KEY, vector BLOB) WITHOUT ROWID"},
    {"vector_model", "CREATE TABLE vector_model(model TEXT, dimensions INTEGER)"},
};
constexpr const char* SQLITE_ADDS[] = {
    "index sqlite_autoindex_files_1",
    "index sqlite_autoindex_meta_1",
    "table chunks_config",
    "table chunks_content",
    "table chunks_data",
    "table chunks_docsize",
    "table chunks_idx",
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

}  // namespace

std::string chunkHash(const std::string& text) {
  // Change detection, not security: a collision (accidental, or made on purpose by whoever
  // writes notes) gives a chunk another chunk's vector, so a rank, nothing more.
  return contentHash(text) + "-" + std::to_string(text.size());
}

namespace {

int64_t changeTimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
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

// What the index recorded of a file (its content hash is read only for a file that is read).
struct Known {
  int64_t ctime, size, ino, chunks;
  bool seen = false;  // by this walk; what is not seen is gone
};

// `files` without the hashes, as one BLOB (`scan.records`), written in the same transaction as
// `files` (the full check compares them): an unchanged scan reads it in one step where decoding
// 10,000 rows cost it as much as the walk. A record: the path's length (uint32), the path, then
// ctime, size, inode, chunks (int64), in this machine's byte order.
class KnownFiles {
 public:
  std::string records;                                    // the paths below point into it
  std::vector<std::pair<std::string_view, Known>> files;  // in the order they were recorded

  // The file recorded at `path`, or nullptr. A walk over an unchanged tree meets the files in
  // the order the last walk recorded them, so the one after the last found is tried first (a
  // string compare); only when that fails is the hash index built.
  Known* find(std::string_view path) {
    if (next_ < files.size() && files[next_].first == path) return &files[next_++].second;
    if (index_.empty()) {
      index_.reserve(files.size());
      for (size_t i = 0; i < files.size(); ++i) index_.emplace(files[i].first, i);
    }
    auto at = index_.find(path);
    if (at == index_.end()) return nullptr;
    next_ = at->second + 1;
    return &files[at->second].second;
  }

 private:
  size_t next_ = 0;
  std::unordered_map<std::string_view, size_t> index_;
};

void appendRecord(std::string& records, std::string_view path, const Known& k) {
  uint32_t length = static_cast<uint32_t>(path.size());
  records.append(reinterpret_cast<const char*>(&length), sizeof length);
  records.append(path);
  for (int64_t v : {k.ctime, k.size, k.ino, k.chunks})
    records.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Throws IndexDamaged when the record is not one this code wrote.
KnownFiles knownFiles(sqlite3* db) {
  KnownFiles known;
  Statement s(db, "SELECT records FROM scan");
  if (!s.step()) throw IndexDamaged("memory index: the scan record is missing");
  known.records = s.blob(0);
  const char* p = known.records.data();
  const char* end = p + known.records.size();
  auto malformed = [&] {
    return IndexDamaged("memory index: the scan record is malformed at byte " +
                        std::to_string(p - known.records.data()));
  };
  while (p < end) {
    uint32_t length;
    if (end - p < static_cast<ptrdiff_t>(sizeof length)) throw malformed();
    memcpy(&length, p, sizeof length);
    p += sizeof length;
    if (static_cast<size_t>(end - p) < length + 4 * sizeof(int64_t)) throw malformed();
    std::string_view path(p, length);
    p += length;
    Known k;
    for (int64_t* v : {&k.ctime, &k.size, &k.ino, &k.chunks}) {
      memcpy(v, p, sizeof *v);
      p += sizeof *v;
    }
    known.files.emplace_back(path, k);
  }
  return known;
}

bool sameFile(const Known& known, const struct stat& st) {
  return known.ctime == changeTimeNs(st) && known.size == st.st_size &&
         known.ino == static_cast<int64_t>(st.st_ino);
}

// A memory file the index may hold: a regular file of bounded size and path.
bool indexable(const FoundFile& f) {
  return f.path.size() <= MemoryIndex::MAX_PATH_BYTES && S_ISREG(f.st.st_mode) &&
         static_cast<uint64_t>(f.st.st_size) <= MemoryIndex::MAX_FILE_BYTES;
}

}  // namespace

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
    if (db_ != nullptr) sqlite3_close_v2(db_);
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
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    fail(rc, "memory index " + path_ + ": " + why);
  }
}

uint64_t MemoryIndex::countOf(const char* sql) {
  Statement s(db_, sql);
  return s.step() ? static_cast<uint64_t>(s.integer(0)) : 0;
}

void MemoryIndex::openDatabase() {
  // NOMUTEX: one thread uses the connection, so SQLite need not lock it around every call
  // (indexing 10,000 notes makes some 100,000 of them).
  if (sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw std::runtime_error("memory index " + path_ + " cannot be opened: " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  // The file may not be ours (memory-index.h): nothing in it may run code or write the schema.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_VIEW, 0, nullptr);
  exec("PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON; PRAGMA temp_store=MEMORY");
}

void MemoryIndex::open() {
  std::string problem;
  try {
    openDatabase();
    problem = cheapCheck();
  } catch (const std::exception& e) {
    problem = e.what();  // not a database file at all
  }
  if (problem == "missing") {
    rebuiltBecause_ = "the index did not exist";
    createSchema();
    writeStamp();
    return;
  }
  if (problem.empty()) {
    std::string stamp;
    int fd = ::open((path_ + ".verified").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      readAll(fd, 4096, stamp);
      close(fd);
    }
    std::string identity = fileIdentity();
    if (!identity.empty() && stamp == identity) return;
    fullCheckDone_ = true;
    problem = fullCheck();
    if (problem.empty()) {
      writeStamp();
      return;
    }
  }
  // Derived data: a file that is not a valid index is replaced, never repaired or trusted.
  recreate("the index was not valid (" + problem + ")");
}

void MemoryIndex::recreate(const std::string& why) {
  rebuiltBecause_ = why;
  if (db_ != nullptr) sqlite3_close_v2(db_);
  db_ = nullptr;
  for (const char* suffix : {"", "-journal", "-wal", "-shm", ".verified"})
    unlink((path_ + suffix).c_str());
  openDatabase();
  createSchema();
  writeStamp();
}

void MemoryIndex::createSchema() {
  static_assert(SCHEMA_VERSION == 4, "the schema below is version 4");
  exec("BEGIN");
  for (const auto& [name, sql] : OUR_TABLES) exec(sql);
  exec(
      "INSERT INTO meta(key, value) VALUES('files', 0), ('chunks', 0);"
      "INSERT INTO scan(records) VALUES(x'');"
      "PRAGMA user_version=4;"
      "COMMIT;");
}

// "" when the file holds this version's schema and nothing else, "missing" when it holds no
// schema at all, else what is wrong. Reads the schema only (it is read to prepare anything).
std::string MemoryIndex::cheapCheck() {
  try {
    int64_t version = static_cast<int64_t>(countOf("PRAGMA user_version"));
    Statement s(db_, "SELECT type, name, sql FROM sqlite_master ORDER BY type, name");
    std::vector<std::string> found;
    std::map<std::string, std::string> definitions;
    while (s.step()) {
      found.push_back(s.text(0) + " " + s.text(1));
      definitions[s.text(1)] = s.text(2);
    }
    if (version == 0 && found.empty()) return "missing";
    if (version != SCHEMA_VERSION)
      return "schema version " + std::to_string(version) + " is not " +
             std::to_string(SCHEMA_VERSION);
    std::vector<std::string> expected(std::begin(SQLITE_ADDS), std::end(SQLITE_ADDS));
    for (const auto& [name, sql] : OUR_TABLES) {
      expected.push_back(std::string("table ") + name);
      if (definitions[name] != sql)
        return std::string("table ") + name + " is not defined as this version defines it";
    }
    std::sort(expected.begin(), expected.end());
    if (found != expected) {
      std::string extra;
      for (const auto& f : found)
        if (!std::binary_search(expected.begin(), expected.end(), f)) extra += " " + f;
      return "the schema is not this version's (" +
             (extra.empty() ? "a table is missing" : "unexpected:" + extra) + ")";
    }
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

// "" when every page and FTS5's structures are sound and meta's counts are the tables'; reads
// the whole file.
std::string MemoryIndex::fullCheck() {
  try {
    Statement check(db_, "PRAGMA quick_check");
    std::string verdict = check.step() ? check.text(0) : "";
    if (verdict != "ok") return "integrity check failed: " + verdict;
    exec("INSERT INTO chunks(chunks) VALUES('integrity-check')");
    MemoryStats kept = readCounts();
    uint64_t files = countOf("SELECT count(*) FROM files");
    uint64_t perFile = countOf("SELECT total(chunks) FROM files");
    uint64_t chunks = countOf("SELECT count(*) FROM chunks");
    if (kept.files != files || kept.chunks != chunks || perFile != chunks)
      return "meta counts " + std::to_string(kept.files) + " files and " +
             std::to_string(kept.chunks) + " chunks; the tables hold " + std::to_string(files) +
             " and " + std::to_string(chunks) + " (" + std::to_string(perFile) + " by file)";
    KnownFiles known = knownFiles(db_);
    Statement row(db_, "SELECT path, ctime, size, ino, chunks FROM files");
    while (row.step()) {
      std::string path = row.text(0);
      const Known* was = known.find(path);
      if (was == nullptr || was->ctime != row.integer(1) || was->size != row.integer(2) ||
          was->ino != row.integer(3) || was->chunks != row.integer(4))
        return "the scan record does not match the files table at \"" + row.text(0) + "\"";
    }
    if (known.files.size() != files) return "the scan record holds files the table does not";
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return "";
}

// What the stamp records: the index file's device, inode, size, mtime and SQLite's file change
// counter, or "" when it cannot be had.
std::string MemoryIndex::fileIdentity() {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) return "";
  // Through SQLite's own file handle: a second descriptor of ours, once closed, would drop
  // SQLite's POSIX locks on the file.
  sqlite3_file* file = nullptr;
  unsigned char counter[4] = {};
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr ||
      file->pMethods->xRead(file, counter, sizeof counter, 24) != SQLITE_OK)
    return "";
  char out[160];
  snprintf(out, sizeof out, "dev %llu ino %llu size %lld mtime %lld.%09ld counter %u\n",
           static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino),
           static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
           st.st_mtim.tv_nsec,
           (unsigned{counter[0]} << 24) | (unsigned{counter[1]} << 16) |
               (unsigned{counter[2]} << 8) | counter[3]);
  return out;
}

// After a full check passed or a commit: the file is one this code wrote or checked. Not synced:
// a stamp lost or torn in a crash only costs the next open a full check.
void MemoryIndex::writeStamp() {
  std::string stampPath = path_ + ".verified";
  std::string identity = fileIdentity();
  int fd = ::open(stampPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;  // the next open checks in full
  bool whole = !identity.empty() &&
               write(fd, identity.data(), identity.size()) == static_cast<ssize_t>(identity.size());
  close(fd);
  if (!whole) unlink(stampPath.c_str());
}

MemoryStats MemoryIndex::update(int rootFd, WalkSync sync) {
  rootFd_ = rootFd;
  return rebuildingOnDamage(false, [&] { return updateOnce(rootFd, sync); });
}

MemoryStats MemoryIndex::status(int rootFd) {
  return rebuildingOnDamage(false, [&] { return statusOnce(rootFd); });
}

MemoryStats MemoryIndex::counts() {
  return rebuildingOnDamage(false, [&] { return readCounts(); });
}

std::vector<MemoryHit> MemoryIndex::search(const std::string& text, uint32_t maxResults) {
  std::string all = ftsQuery(text, " ");
  if (all.empty())
    throw std::invalid_argument("the query \"" + text + "\" has no word to search for");
  return rebuildingOnDamage(true, [&] {
    auto hits = query(all, maxResults);
    if (hits.empty()) hits = query(ftsQuery(text, " OR "), maxResults);
    return hits;
  });
}

MemoryStats MemoryIndex::updateOnce(int rootFd, WalkSync sync) {
  // The pair the last walk recorded (meta 'sync_epoch', 'sync_generation', 'walked_at'), and
  // what that walk skipped (not indexed), which a search without a walk reports again.
  WalkSync recorded;
  int64_t walkedAt = 0;
  uint64_t recordedSkipped = 0;
  {
    Statement meta(db_,
                   "SELECT key, value FROM meta WHERE key IN "
                   "('sync_epoch', 'sync_generation', 'walked_at', 'skipped')");
    while (meta.step()) {
      std::string key = meta.text(0);
      int64_t value = meta.integer(1);
      if (key == "sync_epoch") recorded.epoch = static_cast<uint64_t>(value);
      if (key == "sync_generation") recorded.generation = static_cast<uint64_t>(value);
      if (key == "walked_at") walkedAt = value;
      if (key == "skipped") recordedSkipped = static_cast<uint64_t>(value);
    }
  }
  int64_t nowSeconds = static_cast<int64_t>(::time(nullptr));
  if (sync.epoch != 0 && rebuiltBecause_.empty() && recorded.epoch == sync.epoch &&
      recorded.generation == sync.generation && nowSeconds >= walkedAt &&
      nowSeconds - walkedAt < WALK_EVERY_SECONDS) {
    MemoryStats same = readCounts();
    same.unchanged = same.files;
    same.skipped = recordedSkipped;
    same.walked = false;
    return same;
  }

  MemoryStats stats;
  stats.rebuiltBecause = rebuiltBecause_;
  KnownFiles known = knownFiles(db_);
  uint64_t files = 0, chunks = 0;  // what the index holds once this update is done
  std::string records;             // and its scan record
  records.reserve(known.records.size() + 4096);
  exec("BEGIN IMMEDIATE");
  size_t restamped = 0;
  try {
    Statement getHash(db_, "SELECT hash FROM files WHERE path = ?");
    Statement delChunks(db_, "DELETE FROM chunks WHERE path = ?");
    Statement delFile(db_, "DELETE FROM files WHERE path = ?");
    Statement putFile(db_,
                      "INSERT OR REPLACE INTO files(path, ctime, size, ino, hash, chunks) "
                      "VALUES(?, ?, ?, ?, ?, ?)");
    Statement putChunk(db_,
                       "INSERT INTO chunks(text, path, start_line, end_line, hash) "
                       "VALUES(?, ?, ?, ?, ?)");
    auto forget = [&](const std::string& path) {
      delChunks.reset();
      delChunks.bind(1, path).step();
      delFile.reset();
      delFile.bind(1, path).step();
    };
    forEachMemoryFile(rootFd, [&](const FoundFile& found) {
      // Unusable, or gone unreadable since the walk's stat: not seen, so removed below.
      if (!indexable(found)) {
        ++stats.skipped;
        return;
      }
      Known* was = known.find(found.path);
      if (was != nullptr && sameFile(*was, found.st)) {
        ++stats.unchanged;
        ++files;
        chunks += static_cast<uint64_t>(was->chunks);
        was->seen = true;
        appendRecord(records, found.path, *was);
        return;
      }
      // Only now is the file opened: the unchanged ones above cost their directory's stat.
      int fd = openFoundFile(found);
      std::string content;
      bool read = fd >= 0 && readAll(fd, MAX_FILE_BYTES, content);
      if (fd >= 0) close(fd);
      if (!read) {
        ++stats.skipped;
        return;
      }
      std::string hash = contentHash(content);
      bool sameContent = false;
      if (was != nullptr) {
        getHash.reset();
        sameContent = getHash.bind(1, found.path).step() && getHash.text(0) == hash;
      }
      int64_t fileChunks;
      if (sameContent) {
        ++stats.unchanged;  // touched, not changed: only its stat is recorded again
        ++restamped;
        fileChunks = was->chunks;
      } else {
        if (was != nullptr) forget(found.path);
        auto pieces = chunksOf(content);
        for (const auto& chunk : pieces) {
          putChunk.reset();
          putChunk.bind(1, chunk.text)
              .bind(2, found.path)
              .bind(3, static_cast<int64_t>(chunk.start))
              .bind(4, static_cast<int64_t>(chunk.end))
              .bind(5, chunkHash(chunk.text))
              .step();
        }
        fileChunks = static_cast<int64_t>(pieces.size());
        ++(was == nullptr ? stats.added : stats.changed);
      }
      // The walk's stat, taken before the read: a change after it is seen by the next update.
      putFile.reset();
      putFile.bind(1, found.path)
          .bind(2, changeTimeNs(found.st))
          .bind(3, static_cast<int64_t>(found.st.st_size))
          .bind(4, static_cast<int64_t>(found.st.st_ino))
          .bind(5, hash)
          .bind(6, fileChunks)
          .step();
      ++files;
      chunks += static_cast<uint64_t>(fileChunks);
      appendRecord(records, found.path,
                   Known{changeTimeNs(found.st), static_cast<int64_t>(found.st.st_size),
                         static_cast<int64_t>(found.st.st_ino), fileChunks});
      if (was != nullptr) was->seen = true;
    });
    for (const auto& [path, file] : known.files) {
      if (file.seen) continue;
      forget(std::string(path));
      ++stats.removed;
    }
    bool changedFiles =
        stats.added + stats.changed + stats.removed + restamped != 0 || !rebuiltBecause_.empty();
    // A walk with a pair records it and its time (a search with the same pair then skips its
    // walk); one without a pair clears a recorded one, and otherwise writes nothing when
    // nothing changed (no journal and no fsync on a search's path).
    bool newSync = sync.epoch != 0 || recorded.epoch != 0;
    if (!changedFiles && !newSync) {
      exec("ROLLBACK");
    } else {
      if (changedFiles) {
        // Vectors of texts no chunk holds any more go; the chunks' generation moves on, so the
        // next search looks for chunks without a vector (memory-vectors.c++).
        exec("DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM chunks)");
        exec(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('chunk_generation', "
            "coalesce((SELECT value FROM meta WHERE key = 'chunk_generation'), 0) + 1)");
        Statement meta(db_,
                       "INSERT OR REPLACE INTO meta(key, value) "
                       "VALUES('updated_at', ?), ('files', ?), ('chunks', ?)");
        meta.bind(1, nowSeconds)
            .bind(2, static_cast<int64_t>(files))
            .bind(3, static_cast<int64_t>(chunks))
            .step();
        Statement scan(db_, "UPDATE scan SET records = ?");
        scan.bindBlob(1, records).step();
      }
      Statement walk(db_,
                     "INSERT OR REPLACE INTO meta(key, value) VALUES('sync_epoch', ?), "
                     "('sync_generation', ?), ('walked_at', ?), ('skipped', ?)");
      walk.bind(1, static_cast<int64_t>(sync.epoch))
          .bind(2, static_cast<int64_t>(sync.generation))
          .bind(3, nowSeconds)
          .bind(4, static_cast<int64_t>(stats.skipped))
          .step();
      exec("COMMIT");
      writeStamp();
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  rebuiltBecause_.clear();
  // Just brought up to date: what is on disk is what was read (no second scan of the files).
  MemoryStats now = readCounts();
  now.skipped = stats.skipped;
  now.added = stats.added;
  now.changed = stats.changed;
  now.removed = stats.removed;
  now.unchanged = stats.unchanged;
  now.rebuiltBecause = stats.rebuiltBecause;
  return now;
}

MemoryStats MemoryIndex::readCounts() {
  MemoryStats stats;
  stats.rebuiltBecause = rebuiltBecause_;
  Statement meta(db_, "SELECT key, value FROM meta");
  while (meta.step()) {
    std::string key = meta.text(0);
    uint64_t value = static_cast<uint64_t>(meta.integer(1));
    if (key == "files") stats.files = value;
    if (key == "chunks") stats.chunks = value;
    if (key == "updated_at") stats.updatedAt = static_cast<int64_t>(value);
  }
  stats.indexBytes =
      countOf("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size");
  return stats;
}

MemoryStats MemoryIndex::statusOnce(int rootFd) {
  MemoryStats stats = readCounts();
  KnownFiles known = knownFiles(db_);
  // By the walk's stat alone: no memory file is opened.
  forEachMemoryFile(rootFd, [&](const FoundFile& found) {
    if (!indexable(found)) {
      ++stats.skipped;
      return;
    }
    Known* was = known.find(found.path);
    if (was == nullptr) {
      ++stats.added;
    } else {
      ++(sameFile(*was, found.st) ? stats.unchanged : stats.changed);
      was->seen = true;
    }
  });
  for (const auto& [path, file] : known.files) stats.removed += file.seen ? 0 : 1;
  stats.stale = stats.added + stats.changed + stats.removed;
  return stats;
}

std::vector<MemoryHit> MemoryIndex::query(const std::string& match, uint32_t maxResults) {
  std::vector<MemoryHit> hits;
  Statement s(db_,
              "SELECT path, start_line, end_line, "
              "snippet(chunks, 0, '**', '**', '…', 24), bm25(chunks), rowid "
              "FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks), path, start_line LIMIT ?");
  s.bind(1, match).bind(2, static_cast<int64_t>(maxResults));
  while (s.step()) {
    hits.push_back(MemoryHit{s.text(0), static_cast<uint32_t>(s.integer(1)),
                             static_cast<uint32_t>(s.integer(2)), s.text(3), s.real(4),
                             s.integer(5)});
  }
  return hits;
}

}  // namespace chitin
