// SPDX-License-Identifier: Apache-2.0
// Loading and validating sandbox profiles (sandbox-profiles/*.textproto).
// Runs in: supervisor
//
// A profile is reviewed like code, so every mistake is reported as file:line:column with what
// was expected, and anything odd is refused rather than guessed at.

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <kj/debug.h>

#include <set>

#include "profile.h"
#include "seccomp-groups.h"
#include "spawner.h"

namespace chitin::spawn {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::TextFormat;

class FirstError final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!error) error = Located{line + 1, column + 1, message};
  }
  void AddWarning(int line, int column, const std::string& message) override {
    if (!error) error = Located{line + 1, column + 1, message};  // warnings are errors here
  }
  struct Located {
    int line, column;
    std::string message;
  };
  std::optional<Located> error;
};

class Checker {
 public:
  Checker(const std::string& path, const TextFormat::ParseInfoTree& tree)
      : path_(path), tree_(tree) {}

  // Throws with the location of `field` (element `index` of a repeated field, or the whole
  // field), inside the `mount` element `mountIndex` when >= 0.
  [[noreturn]] void fail(const std::string& message, const char* field, int index = -1,
                         int mountIndex = -1) const {
    const auto* profileDesc = config::SandboxProfile::descriptor();
    const TextFormat::ParseInfoTree* tree = &tree_;
    const google::protobuf::Descriptor* desc = profileDesc;
    if (mountIndex >= 0) {
      tree = tree_.GetTreeForNested(profileDesc->FindFieldByName("mount"), mountIndex);
      desc = config::Mount::descriptor();
    }
    int line = 1, column = 1;
    const FieldDescriptor* fieldDesc = field != nullptr ? desc->FindFieldByName(field) : nullptr;
    // A repeated field as a whole is located by its first element: protobuf treats index -1 on
    // a repeated field as a fatal error (an exception from a FATAL log), not as "the field".
    if (fieldDesc != nullptr && fieldDesc->is_repeated() && index < 0) index = 0;
    if (tree != nullptr && fieldDesc != nullptr) {
      auto loc = tree->GetLocation(fieldDesc, index);
      if (loc.line < 0 && mountIndex >= 0) {
        loc = tree_.GetLocation(profileDesc->FindFieldByName("mount"), mountIndex);
      }
      if (loc.line >= 0) {
        line = loc.line + 1;
        column = loc.column + 1;
      }
    }
    throw SandboxUnavailable(path_ + ":" + std::to_string(line) + ":" + std::to_string(column) +
                             ": " + message);
  }

 private:
  const std::string& path_;
  const TextFormat::ParseInfoTree& tree_;
};

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool isCleanAbsolute(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.find('\0') != std::string::npos) return false;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "." || part == "..") return false;
    if (part.empty() && end != path.size()) return false;  // "//"
    start = end + 1;
  }
  return path.size() == 1 || path.back() != '/';
}

bool needsSrc(config::Mount::Kind kind) {
  return kind == config::Mount::RO_BIND || kind == config::Mount::RO_BIND_TRY ||
         kind == config::Mount::BIND || kind == config::Mount::SYMLINK;
}

void checkMount(const Checker& check, const config::Mount& mount, int i) {
  if (mount.kind() == config::Mount::KIND_UNSPECIFIED) {
    check.fail("mount needs a kind (RO_BIND, RO_BIND_TRY, BIND, TMPFS, PROC, DEV, SYMLINK, DIR)",
               "kind", -1, i);
  }
  if (!isCleanAbsolute(mount.dst())) {
    check.fail(
        "mount dst must be an absolute path without '.', '..' or '//', got \"" + mount.dst() + "\"",
        "dst", -1, i);
  }
  if (mount.dst().rfind("/run/chitin", 0) == 0) {
    check.fail("mount dst under /run/chitin is reserved for the worker binary", "dst", -1, i);
  }
  if (!needsSrc(mount.kind())) {
    if (!mount.src().empty()) check.fail("this mount kind takes no src", "src", -1, i);
    return;
  }
  if (mount.src().empty()) check.fail("this mount kind needs a src", "src", -1, i);
  if (mount.kind() == config::Mount::SYMLINK) {
    if (mount.src().find("..") != std::string::npos || mount.src().find('$') != std::string::npos) {
      check.fail("symlink target must not contain '..' or variables", "src", -1, i);
    }
    return;
  }
  // Bind sources: an absolute host path, or a variable that the spawner fills in per spawn.
  std::string error;
  auto names = variablesIn(mount.src(), error);
  if (!error.empty()) check.fail(error, "src", -1, i);
  for (auto& name : names) {
    if (KNOWN_VARIABLES.count(name) == 0 && name != WORKER_DIR_VARIABLE) {
      check.fail(
          "unknown variable ${" + name +
              "} (known: ${WORKSPACE}, ${STATE_DIR}, ${SKILLS}, ${WORKER_DIR})",
          "src", -1, i);
    }
  }
  std::string sample = mount.src();
  for (auto& name : names) sample = substitute(sample, name, "/var");
  if (!isCleanAbsolute(sample)) {
    check.fail(
        "bind src must be an absolute path without '.', '..' or '//', got \"" + mount.src() + "\"",
        "src", -1, i);
  }
}

void checkProfile(const Checker& check, const config::SandboxProfile& profile,
                  const std::string& name) {
  if (profile.name() != name) {
    check.fail("profile name \"" + profile.name() + "\" must equal the file name \"" + name + "\"",
               "name");
  }
  if (profile.description().empty()) {
    check.fail("profile needs a description of what the worker is for", "description");
  }
  const std::string& worker = profile.worker();
  bool workerOk = !worker.empty() && worker.size() <= 32;
  for (char c : worker) workerOk = workerOk && (isLowerAlnum(c) || c == '-');
  if (!workerOk) check.fail("worker must be a kind like \"exec\" ([a-z0-9-]+)", "worker");
  for (int i = 0; i < profile.mount_size(); i++) checkMount(check, profile.mount(i), i);
  if (!profile.workdir().empty() && !isCleanAbsolute(profile.workdir())) {
    check.fail("workdir must be an absolute path inside the sandbox", "workdir");
  }

  std::set<int> groups;
  for (int i = 0; i < profile.syscalls_size(); i++) {
    int g = profile.syscalls(i);
    if (g == config::SYSCALL_GROUP_UNSPECIFIED) {
      check.fail("unspecified syscall group", "syscalls", i);
    }
    if (!groups.insert(g).second) check.fail("syscall group listed twice", "syscalls", i);
  }
  bool networkGroup = groups.count(config::NETWORK) > 0;
  if (profile.network() && !networkGroup) {
    check.fail("network: true needs the NETWORK syscall group", "network");
  }
  // With egress, loopback has a use: the browser's forwarder listens there for Chromium.
  if (!profile.network() && networkGroup && !profile.egress()) {
    check.fail(
        "the NETWORK group is useless without network: true or egress: true (the sandbox has "
        "only loopback)",
        "syscalls");
  }
  if (profile.egress() && profile.network()) {
    check.fail(
        "egress: true and network: true exclude each other (an egress worker reaches the "
        "network only through the broker's socket)",
        "egress");
  }
  if (profile.egress() && groups.count(config::UNIX_IPC) == 0) {
    check.fail(
        "egress: true needs the UNIX_IPC syscall group (socket(AF_UNIX) and connect to the "
        "broker's socket)",
        "egress");
  }

  if (profile.fork_server()) {
    // Its workers share the zygote's mounts: only what nothing in one sandbox can change for
    // another (read-only binds, symlinks) or what each worker renews (proc, tmpfs, dev).
    for (int i = 0; i < profile.mount_size(); i++) {
      auto kind = profile.mount(i).kind();
      if (kind == config::Mount::BIND || kind == config::Mount::DIR) {
        check.fail(
            "fork_server: true allows no BIND or DIR mount (its workers share the zygote's "
            "mounts; only read-only binds, symlinks, proc, tmpfs and dev)",
            "fork_server");
      }
    }
    if (profile.network() || profile.egress()) {
      check.fail(
          "fork_server: true excludes network: true and egress: true (each forked worker has "
          "a network namespace of its own with nothing in it)",
          "fork_server");
    }
  }

  // errno exceptions: real syscall names that no group already allows.
  std::set<std::string> allowed;
  auto collect = [&](kj::ArrayPtr<const seccomp::Rule> rules) {
    for (auto& rule : rules) {
      if (rule.errnoValue == 0) allowed.insert(rule.syscall);
    }
  };
  for (int g : groups) collect(seccomp::groupRules(static_cast<seccomp::Group>(g)));
  collect(seccomp::bootstrapRules());
  std::set<std::string> errnoNames;
  for (int i = 0; i < profile.errno_syscalls_size(); i++) {
    const std::string& syscall = profile.errno_syscalls(i);
    if (seccomp::resolveSyscall(syscall) < 0) {
      check.fail("unknown syscall \"" + syscall + "\" (names as in seccomp, e.g. \"clone3\")",
                 "errno_syscalls", i);
    }
    if (allowed.count(syscall) > 0) {
      check.fail("\"" + syscall + "\" is already allowed by a syscall group or the bootstrap set",
                 "errno_syscalls", i);
    }
    if (!errnoNames.insert(syscall).second) {
      check.fail("syscall listed twice", "errno_syscalls", i);
    }
  }

  const auto& limits = profile.limits();
  if (!profile.has_limits()) check.fail("profile needs limits {}", "limits");
  struct Required {
    uint64_t value;
    const char* field;
  };
  for (auto required : {Required{limits.memory_bytes(), "memory_bytes"},
                        Required{limits.max_processes(), "max_processes"},
                        Required{limits.max_open_files(), "max_open_files"},
                        Required{limits.cpu_seconds(), "cpu_seconds"},
                        Required{limits.max_file_bytes(), "max_file_bytes"},
                        Required{limits.tmpfs_bytes(), "tmpfs_bytes"},
                        Required{limits.sandbox_memory_bytes(), "sandbox_memory_bytes"},
                        Required{limits.cpu_percent(), "cpu_percent"}}) {
    if (required.value == 0) {
      check.fail(std::string("limits.") + required.field +
                     " must be set (> 0); only wall_clock_seconds may be 0 (none)",
                 "limits");
    }
  }
  if (limits.cpu_percent() > 100000) {
    check.fail("limits.cpu_percent is a percentage of one CPU (100 = one CPU), at most 100000",
               "limits");
  }
}

}  // namespace

const std::set<std::string> KNOWN_VARIABLES = {"WORKSPACE", "STATE_DIR", "SKILLS"};

std::vector<std::string> variablesIn(const std::string& text, std::string& error) {
  std::vector<std::string> names;
  size_t pos = 0;
  while ((pos = text.find('$', pos)) != std::string::npos) {
    if (pos + 1 >= text.size() || text[pos + 1] != '{') {
      error = "a '$' must start a variable like ${WORKSPACE}";
      return {};
    }
    size_t end = text.find('}', pos);
    if (end == std::string::npos) {
      error = "unterminated variable (missing '}')";
      return {};
    }
    names.push_back(text.substr(pos + 2, end - pos - 2));
    pos = end + 1;
  }
  return names;
}

std::string substitute(const std::string& text, const std::string& name, const std::string& value) {
  std::string token = "${" + name + "}";
  std::string out = text;
  size_t pos = 0;
  while ((pos = out.find(token, pos)) != std::string::npos) {
    out.replace(pos, token.size(), value);
    pos += value.size();
  }
  return out;
}

config::SandboxProfile loadProfile(SpawnOs& os, const std::string& profileDir,
                                   const std::string& name) {
  bool nameOk = !name.empty() && name.size() <= 64;
  for (char c : name) nameOk = nameOk && (isLowerAlnum(c) || c == '-' || c == '_');
  if (!nameOk) {
    throw SandboxUnavailable("sandbox profile name \"" + name +
                             "\" is not valid (expected [a-z0-9_-]+, e.g. \"exec\")");
  }
  std::string path = profileDir + "/" + name + ".textproto";
  if (!os.fileExists(path)) {
    throw SandboxUnavailable("sandbox profile \"" + name + "\" not found: " + path +
                             " does not exist");
  }
  std::string text = os.readFile(path);

  config::SandboxProfile profile;
  TextFormat::Parser parser;
  FirstError errors;
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &profile) || errors.error) {
    if (errors.error) {
      throw SandboxUnavailable(path + ":" + std::to_string(errors.error->line) + ":" +
                               std::to_string(errors.error->column) + ": " + errors.error->message);
    }
    throw SandboxUnavailable(path + ": not a valid sandbox profile");
  }
  checkProfile(Checker(path, tree), profile, name);
  return profile;
}

}  // namespace chitin::spawn
