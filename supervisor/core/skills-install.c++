// SPDX-License-Identifier: Apache-2.0
// Installing a skill: the checks, the copy, the audit record and the snapshot (see
// skills-install.h).
// Runs in: the `chitin skills install` command

#include "skills-install.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <kj/io.h>

#include "audit-log.h"
#include "snapshots.h"

namespace chitin::skills {

namespace {

bool printableName(const std::string& n) {
  for (unsigned char c : n)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// Lists `dirFd` into `plan` (depth-first, names sorted). Returns "" or the refusal.
std::string walk(int dirFd, const std::string& prefix, int depth, InstallPlan& plan) {
  if (depth > MAX_DEPTH) return prefix + ": nested deeper than " + std::to_string(MAX_DEPTH);
  int dup = fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return prefix + ": " + strerror(errno);
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    return prefix + ": cannot list: " + strerror(errno);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    names.push_back(n);
    if (plan.files.size() + names.size() > MAX_FILES) {
      closedir(d);
      return "more than " + std::to_string(MAX_FILES) + " files and folders";
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string rel = prefix.empty() ? n : prefix + "/" + n;
    if (!printableName(n)) return "\"" + rel + "\": a name with control characters";
    struct stat st;
    if (fstatat(dirFd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return rel + ": " + strerror(errno);
    if (S_ISLNK(st.st_mode)) return rel + ": a symlink (a skill must be plain files)";
    if (S_ISDIR(st.st_mode)) {
      plan.files.push_back({rel, true, 0, false});
      kj::AutoCloseFd sub(
          openat(dirFd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.get() < 0) return rel + ": " + strerror(errno);
      std::string e = walk(sub.get(), rel, depth + 1, plan);
      if (!e.empty()) return e;
      continue;
    }
    if (!S_ISREG(st.st_mode))
      return rel + ": a device file, fifo or socket (a skill must be plain files)";
    if (static_cast<uint64_t>(st.st_size) > MAX_FILE_BYTES)
      return rel + ": " + std::to_string(st.st_size) + " bytes, over the limit of " +
             std::to_string(MAX_FILE_BYTES);
    plan.totalBytes += static_cast<uint64_t>(st.st_size);
    if (plan.totalBytes > MAX_TOTAL_BYTES)
      return "the files add up to more than " + std::to_string(MAX_TOTAL_BYTES) + " bytes";
    plan.files.push_back({rel, false, static_cast<uint64_t>(st.st_size), (st.st_mode & 0111) != 0});
  }
  return "";
}

// Reads a planned file below `root` again, refusing it if it is no longer what was shown.
std::string readPlanned(int root, const PlannedFile& f) {
  int fd = openat(root, f.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  // The path's folders were checked too, but may have been swapped for links since.
  kj::AutoCloseFd file(fd);
  if (fd < 0) throw std::runtime_error(f.path + ": cannot open: " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != f.size)
    throw std::runtime_error(f.path + ": changed since it was shown; nothing was installed");
  std::string data(f.size + 1, '\0');
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(f.path + ": " + strerror(errno));
    if (n == 0 || (got += static_cast<size_t>(n)) == data.size()) break;
  }
  if (got != f.size)
    throw std::runtime_error(f.path + ": changed since it was shown; nothing was installed");
  data.resize(got);
  return data;
}

void writeAll(int dirFd, const std::string& rel, const std::string& data, mode_t mode) {
  kj::AutoCloseFd fd(
      openat(dirFd, rel.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) throw std::runtime_error(rel + ": cannot create: " + strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(rel + ": cannot write: " + strerror(errno));
    off += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), mode) != 0 || fsync(fd.get()) != 0)
    throw std::runtime_error(rel + ": " + strerror(errno));
}

std::string frontMatterText(const std::string& md) {
  size_t start = md.find('\n') + 1;
  size_t end = md.find("\n---", start);
  return end == std::string::npos ? "" : md.substr(start, end - start + 1);
}

std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) {
      out += static_cast<char>(c);
    } else {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

}  // namespace

std::optional<InstallPlan> planInstall(const std::string& source, std::string& error) {
  struct stat st;
  if (lstat(source.c_str(), &st) != 0) {
    error = source + ": " + strerror(errno);
    return std::nullopt;
  }
  if (S_ISLNK(st.st_mode)) {
    error = source + ": a symlink; give the folder itself";
    return std::nullopt;
  }
  if (S_ISREG(st.st_mode)) {
    error = source +
            ": a file; chitin installs a plain folder only (it parses no archives). Unpack it "
            "first, e.g. `mkdir x && tar -xf " +
            source + " -C x --no-same-owner --no-same-permissions`, then install the skill folder";
    return std::nullopt;
  }
  if (!S_ISDIR(st.st_mode)) {
    error = source + ": not a folder";
    return std::nullopt;
  }
  kj::AutoCloseFd root(open(source.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.get() < 0) {
    error = source + ": " + strerror(errno);
    return std::nullopt;
  }
  InstallPlan plan;
  plan.source = source;
  std::string e = walk(root.get(), "", 1, plan);
  if (!e.empty()) {
    error = source + ": refused: " + e;
    return std::nullopt;
  }
  auto md = std::find_if(plan.files.begin(), plan.files.end(),
                         [](const PlannedFile& f) { return f.path == "SKILL.md" && !f.dir; });
  if (md == plan.files.end()) {
    error = source + ": refused: no SKILL.md at the top of the folder";
    return std::nullopt;
  }
  try {
    std::string text = readPlanned(root.get(), *md);
    std::optional<FrontMatter> fm = parseFrontMatter(text, e);
    if (!fm) {
      error = source + "/SKILL.md: " + e;
      return std::nullopt;
    }
    plan.meta = std::move(*fm);
    plan.frontMatter = frontMatterText(text);
  } catch (const std::exception& ex) {
    error = source + ": " + ex.what();
    return std::nullopt;
  }
  return plan;
}

void printPlan(const InstallPlan& plan, const std::string& destination, std::ostream& out) {
  out << "Skill \"" << plan.meta.name << "\" from " << escaped(plan.source) << "\n"
      << "will be installed in " << destination << "\n\nFront matter of SKILL.md:\n";
  std::string fm = escaped(plan.frontMatter);
  size_t pos = 0;
  while (pos < fm.size()) {
    size_t nl = fm.find('\n', pos);
    out << "  | " << fm.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos) << "\n";
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  out << "\nFiles (" << plan.files.size() << ", " << plan.totalBytes << " bytes):\n";
  for (const auto& f : plan.files) {
    if (f.dir)
      out << "  " << escaped(f.path) << "/\n";
    else
      out << "  " << escaped(f.path) << "  " << f.size << " bytes"
          << (f.executable ? "  (executable)" : "") << "\n";
  }
  out << "\nA skill is instructions the agent reads and files it may run with `exec`, inside the "
         "sandbox and under the policy; it cannot widen what the policy allows.\n";
}

InstallResult install(const InstallPlan& plan, const std::string& chitinHome,
                      const std::string& principal) {
  namespace fs = std::filesystem;
  const std::string skillsDir = chitinHome + "/skills";
  InstallResult result;
  result.destination = skillsDir + "/" + plan.meta.name;
  // The audit log first: while the gateway runs it holds the log, and an install that cannot be
  // recorded does not happen.
  std::unique_ptr<audit::AuditLog> log;
  try {
    log = audit::AuditLog::open(chitinHome + "/state/audit");
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot open the audit log (an install must be recorded; "
                                         "is the gateway running? stop it and try again): ") +
                             e.what());
  }
  if (mkdir(skillsDir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error(skillsDir + ": " + strerror(errno));
  struct stat st;
  if (lstat(result.destination.c_str(), &st) == 0)
    throw std::runtime_error(result.destination + " already exists; remove it first to replace it");

  const std::string staging =
      skillsDir + "/.install-" + plan.meta.name + "-" + std::to_string(getpid());
  std::error_code ec;
  fs::remove_all(staging, ec);
  auto cleanup = [&] { fs::remove_all(staging, ec); };
  try {
    if (mkdir(staging.c_str(), 0755) != 0)
      throw std::runtime_error(staging + ": " + strerror(errno));
    kj::AutoCloseFd src(open(plan.source.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    kj::AutoCloseFd dst(open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (src.get() < 0 || dst.get() < 0)
      throw std::runtime_error(plan.source + ": " + strerror(errno));
    for (const auto& f : plan.files) {
      if (f.dir) {
        if (mkdirat(dst.get(), f.path.c_str(), 0755) != 0)
          throw std::runtime_error(f.path + ": " + strerror(errno));
        continue;
      }
      writeAll(dst.get(), f.path, readPlanned(src.get(), f), f.executable ? 0755 : 0644);
    }
    // The copy's own SKILL.md must still be the skill that was shown.
    std::string error;
    std::string md = readPlanned(
        dst.get(), *std::find_if(plan.files.begin(), plan.files.end(),
                                 [](const PlannedFile& f) { return f.path == "SKILL.md"; }));
    auto fm = parseFrontMatter(md, error);
    if (!fm || fm->name != plan.meta.name || frontMatterText(md) != plan.frontMatter)
      throw std::runtime_error("SKILL.md changed since it was shown; nothing was installed");
    if (fsync(dst.get()) != 0) throw std::runtime_error(staging + ": " + strerror(errno));
  } catch (...) {
    cleanup();
    throw;
  }

  std::unique_ptr<audit::Snapshots> snaps;
  audit::Record r;
  try {
    snaps =
        std::make_unique<audit::Snapshots>(chitinHome + "/state/snapshots/skills.git", skillsDir);
    result.snapshotBefore = snaps->take("before installing skill " + plan.meta.name).id;
    r.set_kind(audit::SKILL_INSTALL);
    r.set_principal(principal);
    r.set_tool("skills install");
    r.set_outcome("installing");
    r.set_snapshot(result.snapshotBefore);
    r.set_detail("skill " + plan.meta.name + " from " + audit::printablePath(plan.source) +
                 " into " + result.destination + ": " + std::to_string(plan.files.size()) +
                 " entries, " + std::to_string(plan.totalBytes) +
                 " bytes; the snapshot is $CHITIN_HOME/skills before");
    for (const auto& f : plan.files) {
      if (f.dir) continue;
      auto* fc = r.add_files();
      fc->set_path(audit::printablePath(plan.meta.name + "/" + f.path));
    }
    result.auditSeq = log->append(r, true);
  } catch (...) {
    cleanup();
    throw;
  }
  if (renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, result.destination.c_str(),
                RENAME_NOREPLACE) != 0) {
    std::string why = strerror(errno);
    cleanup();
    r.set_outcome("error: " + why);
    log->appendOrLog(r, true);
    throw std::runtime_error(result.destination + ": cannot install: " + why);
  }
  kj::AutoCloseFd dir(open(skillsDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) fsync(dir.get());
  try {
    result.snapshotAfter = snaps->take("installed skill " + plan.meta.name).id;
  } catch (const std::exception& e) {
    result.snapshotAfter = "";
  }
  r.set_outcome("ok");
  r.set_snapshot(result.snapshotAfter);
  r.set_detail("skill " + plan.meta.name + " installed in " + result.destination +
               (result.snapshotAfter.empty() ? "; the snapshot after it failed" : ""));
  r.clear_files();
  log->appendOrLog(r, true);
  return result;
}

}  // namespace chitin::skills
