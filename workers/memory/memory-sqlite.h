// SPDX-License-Identifier: Apache-2.0
// What the memory index's two source files share (memory-index.c++: files, chunks, checks;
// memory-vectors.c++: embeddings and hybrid ranking): prepared statements, SQLite's errors as
// exceptions, and the rebuild of a damaged index.
// Runs in: the memory worker (sandboxed), and its tests. Internal to workers/memory/.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "memory-index.h"

namespace chitin::memory_sqlite {

// SQLite found the index file damaged while using it (SQLITE_CORRUPT, SQLITE_NOTADB): the index
// is rebuilt (MemoryIndex::rebuildingOnDamage), unlike any other error.
class IndexDamaged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(int rc, const std::string& message) {
  int primary = rc & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) throw IndexDamaged(message);
  throw std::runtime_error(message);
}

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK)
      fail(rc, std::string("memory index: ") + sqlite3_errmsg(db) + " in: " + sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bindBlob(int i, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
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
    fail(rc, std::string("memory index: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  double real(int col) { return sqlite3_column_double(stmt_, col); }
  std::string blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }
  // A column's bytes without a copy, valid until the next step(); blobData() then bytes().
  const void* blobData(int col) { return sqlite3_column_blob(stmt_, col); }
  size_t bytes(int col) { return static_cast<size_t>(sqlite3_column_bytes(stmt_, col)); }
  std::string text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace chitin::memory_sqlite

namespace chitin {

template <typename F>
auto MemoryIndex::rebuildingOnDamage(bool refill, F&& use) -> decltype(use()) {
  try {
    return use();
  } catch (const memory_sqlite::IndexDamaged& e) {
    if (rebuiltOnDamage_) throw;  // once per call: damage again is not the file's
    rebuiltOnDamage_ = true;
    std::string why = std::string("the index was not valid (damaged: ") + e.what() + ")";
    recreate(why);
    if (refill && rootFd_ >= 0) {
      updateOnce(rootFd_, WalkSync{});  // a new index: walked in full whatever was passed
      rebuiltBecause_ = why;            // still this call's news (updateOnce reported it to no one)
    }
    return use();
  }
}

}  // namespace chitin
