// SPDX-License-Identifier: Apache-2.0
// JSON-lines transcripts (see transcript.h).
// Runs in: supervisor

#include "transcript.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>

#include "pool-sync.h"

namespace chitin {

namespace {

constexpr char SUFFIX[] = ".jsonl";

std::string rfc3339(time_t secs, long millis) {
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace

std::string nowRfc3339() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  return rfc3339(static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000));
}

nlohmann::json TranscriptEntry::toJson() const {
  nlohmann::json j = {{"ts", ts}, {"runId", runId}, {"role", role}, {"content", content}};
  if (!toolCalls.empty()) {
    auto calls = nlohmann::json::array();
    for (auto& c : toolCalls)
      calls.push_back({{"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
    j["toolCalls"] = calls;
  }
  if (!toolCallId.empty()) j["toolCallId"] = toolCallId;
  if (!toolName.empty()) j["toolName"] = toolName;
  if (isError) j["isError"] = true;
  if (!untrusted.empty()) j["untrusted"] = untrusted;
  if (!kind.empty()) j["kind"] = kind;
  if (role == "compaction") j["kept"] = kept;
  return j;
}

TranscriptEntry TranscriptEntry::fromJson(const nlohmann::json& j) {
  TranscriptEntry e;
  e.ts = j.value("ts", "");
  e.runId = j.value("runId", "");
  e.role = j.at("role").get<std::string>();
  if (e.role != "user" && e.role != "assistant" && e.role != "tool" && e.role != "compaction") {
    throw std::runtime_error("unknown role \"" + e.role + "\"");
  }
  e.content = j.value("content", "");
  if (j.contains("toolCalls")) {
    for (auto& c : j.at("toolCalls")) {
      e.toolCalls.push_back({c.at("id").get<std::string>(), c.at("name").get<std::string>(),
                             c.value("arguments", "{}")});
    }
  }
  e.toolCallId = j.value("toolCallId", "");
  e.toolName = j.value("toolName", "");
  e.isError = j.value("isError", false);
  e.untrusted = j.value("untrusted", "");
  e.kind = j.value("kind", "");
  e.kept = j.value("kept", uint64_t{0});
  return e;
}

// The parsed entries of recently loaded sessions (see transcript.h).
struct TranscriptStore::Cache {
  struct Parsed {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t parsedTo = 0;  // just after the last newline parsed
    size_t bad = 0;      // lines before parsedTo that did not parse
    std::vector<TranscriptEntry> entries;
    uint64_t lastUse = 0;
  };
  std::mutex mutex;
  std::map<std::string, Parsed> sessions;
  size_t maxBytes;
  size_t bytes = 0;  // sum of parsedTo over `sessions`
  uint64_t clock = 0;

  explicit Cache(size_t maxBytes) : maxBytes(maxBytes) {}

  void forget(std::map<std::string, Parsed>::iterator it) {
    bytes -= static_cast<size_t>(it->second.parsedTo);
    sessions.erase(it);
  }
  // Makes room for `more` bytes by dropping the least recently loaded sessions but `keep`.
  void makeRoom(size_t more, const std::string& keep) {
    while (bytes + more > maxBytes) {
      auto oldest = sessions.end();
      for (auto it = sessions.begin(); it != sessions.end(); ++it) {
        if (it->first != keep && (oldest == sessions.end() || it->second.lastUse < oldest->second.lastUse))
          oldest = it;
      }
      if (oldest == sessions.end()) return;
      forget(oldest);
    }
  }
};

namespace {

// Parses the lines of `text` into `out` (counting those that do not parse in `bad`).
void parseLines(const char* text, size_t size, std::vector<TranscriptEntry>& out, size_t& bad) {
  size_t pos = 0;
  while (pos < size) {
    const char* nl = static_cast<const char*>(memchr(text + pos, '\n', size - pos));
    size_t end = nl != nullptr ? static_cast<size_t>(nl - text) : size;
    if (end > pos) {
      try {
        out.push_back(TranscriptEntry::fromJson(nlohmann::json::parse(text + pos, text + end)));
      } catch (const std::exception&) {
        ++bad;
      }
    }
    pos = end + 1;
  }
}

}  // namespace

TranscriptStore::TranscriptStore(std::string dir, size_t cacheBytes)
    : dir_(std::move(dir)), cache_(std::make_unique<Cache>(cacheBytes)) {}

TranscriptStore::~TranscriptStore() = default;

std::string TranscriptStore::fileNameFor(const std::string& key) {
  static const char HEX[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    if (isalnum(c) || c == '.' || c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += HEX[c >> 4];
      out += HEX[c & 15];
    }
  }
  // A leading '.' would make a hidden file (and ".." a directory name).
  if (!out.empty() && out[0] == '.') out = "%2E" + out.substr(1);
  return out + SUFFIX;
}

std::string TranscriptStore::keyForFileName(const std::string& name) {
  size_t n = sizeof(SUFFIX) - 1;
  if (name.size() <= n || name.compare(name.size() - n, n, SUFFIX) != 0) return "";
  std::string base = name.substr(0, name.size() - n);
  std::string key;
  for (size_t i = 0; i < base.size(); ++i) {
    if (base[i] != '%') {
      key += base[i];
      continue;
    }
    if (i + 2 >= base.size() || !isxdigit(static_cast<unsigned char>(base[i + 1])) ||
        !isxdigit(static_cast<unsigned char>(base[i + 2]))) {
      return "";  // not a name fileNameFor() produces
    }
    key += static_cast<char>(std::stoi(base.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return key;
}

namespace {

// A crash (kill -9, power loss) in the middle of an append can leave a last line without its
// newline. That record was never acknowledged: append() returns only after fdatasync. Cut it off
// before appending, so the next record starts on its own line instead of being glued to it.
void cutTornTail(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) return;
  char last;
  if (pread(fd, &last, 1, st.st_size - 1) != 1 || last == '\n') return;
  off_t end = st.st_size;
  char buf[4096];
  while (end > 0) {
    off_t start = end > static_cast<off_t>(sizeof(buf)) ? end - sizeof(buf) : 0;
    ssize_t n = pread(fd, buf, end - start, start);
    if (n <= 0) return;
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (buf[i] == '\n') {
        end = start + i + 1;
        if (ftruncate(fd, end) != 0)
          throw std::runtime_error("cannot cut the torn last line of " + path + ": " +
                                   strerror(errno));
        return;
      }
    }
    end = start;
  }
  if (ftruncate(fd, 0) != 0)
    throw std::runtime_error("cannot cut the torn last line of " + path + ": " + strerror(errno));
}

}  // namespace

int TranscriptStore::write(const std::string& key, const TranscriptEntry& entry,
                           std::string& path) {
  std::string line = entry.toJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  path = dir_ + "/" + fileNameFor(key);
  int fd = open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error("cannot open transcript " + path + ": " + strerror(errno));
  try {
    cutTornTail(fd, path);
  } catch (...) {
    close(fd);
    throw;
  }
  // One write per record: with O_APPEND the record lands whole or (on a crash) as a torn tail.
  ssize_t n = ::write(fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    int saved = n < 0 ? errno : ENOSPC;
    close(fd);
    throw std::runtime_error("cannot append to transcript " + path + ": " + strerror(saved));
  }
  return fd;
}

void TranscriptStore::append(const std::string& key, const TranscriptEntry& entry) {
  std::string path;
  int fd = write(key, entry, path);
  bool synced = fdatasync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!synced) {
    throw std::runtime_error("cannot append to transcript " + path + ": " + strerror(saved));
  }
}

void TranscriptStore::appendAsync(uv_loop_t* loop, const std::string& key,
                                  const TranscriptEntry& entry,
                                  std::function<void(int error)> synced) {
  std::string path;
  int fd = write(key, entry, path);
  if (int rc = fdatasyncOnPool(loop, fd, std::move(synced)); rc != 0) {
    throw std::runtime_error("cannot sync transcript " + path + ": " + uv_strerror(rc));
  }
}

std::vector<TranscriptEntry> TranscriptStore::load(const std::string& key, size_t* skipped) const {
  std::string path = dir_ + "/" + fileNameFor(key);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->sessions.find(key);
    if (it != cache_->sessions.end()) cache_->forget(it);
    if (skipped != nullptr) *skipped = 0;
    return {};
  }
  std::lock_guard lock(cache_->mutex);
  auto it = cache_->sessions.find(key);
  if (it != cache_->sessions.end() &&
      (it->second.dev != st.st_dev || it->second.ino != st.st_ino ||
       it->second.parsedTo > st.st_size)) {
    cache_->forget(it);  // not the file it parsed, or not only grown since
    it = cache_->sessions.end();
  }
  Cache::Parsed fresh;
  fresh.dev = st.st_dev;
  fresh.ino = st.st_ino;
  Cache::Parsed& parsed = it != cache_->sessions.end() ? it->second : fresh;
  // What was appended since: read to the end, parse up to its last newline.
  std::string text;
  off_t at = parsed.parsedTo;
  char buf[65536];
  while (true) {
    ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  close(fd);
  size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  parseLines(text.data(), whole, parsed.entries, parsed.bad);
  parsed.parsedTo += static_cast<off_t>(whole);
  parsed.lastUse = ++cache_->clock;

  std::vector<TranscriptEntry> out = parsed.entries;
  size_t bad = parsed.bad;
  // A last line without its newline (a torn append, or one being written) is read, never kept.
  parseLines(text.data() + whole, text.size() - whole, out, bad);
  if (skipped != nullptr) *skipped = bad;

  size_t size = static_cast<size_t>(parsed.parsedTo);
  if (it == cache_->sessions.end()) {
    if (size <= cache_->maxBytes) {
      cache_->makeRoom(size, key);
      cache_->bytes += size;
      cache_->sessions.emplace(key, std::move(fresh));
    }
  } else {
    cache_->bytes += static_cast<size_t>(whole);
    if (size > cache_->maxBytes) {
      cache_->forget(it);
    } else {
      cache_->makeRoom(0, key);
    }
  }
  return out;
}

std::string TranscriptStore::archive(const std::string& key) {
  std::string name = fileNameFor(key);
  std::string from = dir_ + "/" + name;
  struct stat st;
  if (lstat(from.c_str(), &st) != 0) {
    if (errno == ENOENT) return "";
    throw std::runtime_error("cannot stat transcript " + from + ": " + strerror(errno));
  }
  std::string archiveDir = dir_ + "/archive";
  if (mkdir(archiveDir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + archiveDir + ": " + strerror(errno));
  std::string stamp = nowRfc3339();
  for (char& c : stamp) {
    if (c == ':') c = '-';
  }
  std::string base = name.substr(0, name.size() - (sizeof(SUFFIX) - 1));
  std::string archived = base + "." + stamp + SUFFIX;
  std::string to = archiveDir + "/" + archived;
  // RENAME_NOREPLACE: two resets in the same millisecond must not lose the first archive.
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0)
    throw std::runtime_error("cannot archive " + from + " as " + to + ": " + strerror(errno));
  int dirFd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    fsync(dirFd);
    close(dirFd);
  }
  return "archive/" + archived;
}

std::vector<TranscriptSummary> TranscriptStore::list() const {
  std::vector<TranscriptSummary> out;
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return out;
  while (struct dirent* ent = readdir(d)) {
    std::string key = keyForFileName(ent->d_name);
    if (key.empty()) continue;
    TranscriptSummary s;
    s.key = key;
    std::string path = dir_ + "/" + ent->d_name;
    struct stat st;
    if (stat(path.c_str(), &st) == 0)
      s.updatedAt = rfc3339(st.st_mtim.tv_sec, st.st_mtim.tv_nsec / 1000000);
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) ++s.entries;
    }
    out.push_back(std::move(s));
  }
  closedir(d);
  return out;
}

}  // namespace chitin
