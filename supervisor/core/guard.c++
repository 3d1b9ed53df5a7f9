// SPDX-License-Identifier: Apache-2.0
// The guard (see guard.h).
// Runs in: supervisor

#include "guard.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "utf8.h"
#include "workspace-path.h"

namespace chitin {

namespace {

using nlohmann::json;

constexpr size_t DESCRIPTION_BYTES = 300;

bool isMutating(const std::string& tool) {
  return tool == "exec" || tool == "write" || tool == "edit";
}
bool isFileTool(const std::string& tool) {
  return tool == "read" || tool == "write" || tool == "edit";
}

// The tool's JSON arguments as a Cedar record: strings, whole numbers and booleans as such;
// anything else (fractions, nested values) as its JSON text, so no argument is invisible.
policy::Value argumentsRecord(const json& args) {
  policy::Value::Record record;
  for (auto it = args.begin(); it != args.end(); ++it) {
    const json& v = it.value();
    if (v.is_string()) {
      record[it.key()] = policy::Value::string(v.get<std::string>());
    } else if (v.is_boolean()) {
      record[it.key()] = policy::Value::boolean(v.get<bool>());
    } else if (v.is_number_integer()) {
      record[it.key()] = policy::Value::integer(v.get<int64_t>());
    } else if (v.is_number_unsigned()) {
      record[it.key()] = policy::Value::string(v.dump());
    } else if (!v.is_null()) {
      record[it.key()] = policy::Value::string(v.dump());
    }
  }
  return policy::Value::record(std::move(record));
}

std::string decisionText(const policy::Verdict& v) {
  std::string out;
  for (const auto& p : v.policies) out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? "no policy permits it" : "policies: " + out;
}

long openat2Path(int dirFd, const char* path, uint64_t flags) {
  struct open_how how {};
  how.flags = flags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return syscall(SYS_openat2, dirFd, path, &how, sizeof(how));
}

}  // namespace

CommandShape commandShape(const std::string& command) {
  CommandShape shape;
  size_t start = command.find_first_not_of(' ');
  if (start == std::string::npos) return shape;
  size_t end = command.find(' ', start);
  std::string first = command.substr(start, end == std::string::npos ? end : end - start);
  // Only the system's own directories are stripped: `./ls` or `bin/ls` is a program from the
  // workspace, which the model may have written, and must not pass for `ls`.
  shape.program = first;
  for (const char* dir : {"/usr/local/bin/", "/usr/bin/", "/bin/"}) {
    if (first.rfind(dir, 0) == 0 && first.find('/', strlen(dir)) == std::string::npos) {
      shape.program = first.substr(strlen(dir));
      break;
    }
  }
  // Plain words separated by single spaces: nothing the shell would interpret.
  shape.simple = !command.empty() && command.front() != ' ' && command.back() != ' ' &&
                 command.find("  ") == std::string::npos;
  for (unsigned char c : command) {
    if (!(isalnum(c) || strchr("_./:=,@%+- ", c) != nullptr) || c == '\0') {
      shape.simple = false;
      break;
    }
  }
  return shape;
}

std::string describeCall(const std::string& tool, const json& args) {
  auto str = [&](const char* key) {
    auto it = args.find(key);
    return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string text;
  if (tool == "exec") {
    text = "exec: " + str("command");
    if (!str("workdir").empty()) text += "  (in " + str("workdir") + ")";
  } else if (tool == "write") {
    text = "write " + std::to_string(str("content").size()) + " bytes to " + str("path");
  } else if (tool == "edit") {
    text = "edit " + str("path") + ": replace \"" + clipUtf8(str("oldText"), 60) + "\" with \"" +
           clipUtf8(str("newText"), 60) + "\"";
  } else if (tool == "read") {
    text = "read " + str("path");
  } else {
    text = tool + " " + args.dump();
  }
  // One line: a newline in a command must not hide the rest of it from the person approving.
  std::string oneLine;
  for (char c : text) {
    if (c == '\n') {
      oneLine += "\\n";
    } else if (c == '\r') {
      oneLine += "\\r";
    } else {
      oneLine += c;
    }
  }
  return clipUtf8(oneLine, DESCRIPTION_BYTES);
}

std::string resolvedIdentity(const std::string& workspaceDir, const std::string& relativePath) {
  int root = open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return "unresolvable";
  std::string target = relativePath;
  std::string suffix;
  long fd = openat2Path(root, target.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    // Not there yet: what matters is where it would be created.
    size_t slash = target.rfind('/');
    suffix = "/+" + (slash == std::string::npos ? target : target.substr(slash + 1));
    target = slash == std::string::npos ? "." : target.substr(0, slash);
    fd = openat2Path(root, target.c_str(), O_PATH | O_CLOEXEC);
  }
  std::string identity;
  if (fd < 0) {
    identity = std::string("error:") + strerror(errno);
  } else {
    char link[4096];
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(proc.c_str(), link, sizeof(link) - 1);
    struct stat st {};
    fstat(static_cast<int>(fd), &st);
    std::string real = n > 0 ? std::string(link, n) : "?";
    if (real.compare(0, workspaceDir.size(), workspaceDir) == 0)
      real = real.substr(workspaceDir.size());
    identity = real + suffix + "@" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    close(static_cast<int>(fd));
  }
  close(root);
  return identity;
}

// ---------------------------------------------------------------------------------------------

struct Guard::Call {
  std::shared_ptr<TurnFacts> turn;
  std::string id;
  std::string tool;
  std::string arguments;
  json args;
  std::string path;  // file tools: the clean workspace-relative path
  std::string fingerprint;
  std::string snapshot;
  uint64_t intentSeq = 0;
};

Guard::Guard(PolicyHost& policy, ApprovalBook& approvals, audit::AuditLog& audit,
             audit::Snapshots& snapshots, ToolRunner& tools, GuardSettings settings)
    : policy_(policy),
      approvals_(approvals),
      audit_(audit),
      snapshots_(snapshots),
      tools_(tools),
      settings_(std::move(settings)) {}

uint64_t Guard::record(audit::Record r, bool sync) { return audit_.append(std::move(r), sync); }

kj::Promise<ToolOutcome> Guard::run(std::shared_ptr<TurnFacts> turn, std::string callId,
                                    std::string tool, std::string argumentsJson,
                                    std::function<void()> onAwaitingApproval) {
  auto call = std::make_shared<Call>();
  call->turn = std::move(turn);
  call->id = std::move(callId);
  call->tool = std::move(tool);
  call->arguments = std::move(argumentsJson);

  audit::Record base;
  base.set_session(call->turn->sessionKey);
  base.set_run_id(call->turn->runId);
  base.set_principal(call->turn->principal.str());
  base.set_tool(call->tool);
  base.set_call_id(call->id);
  base.set_arguments(call->arguments);

  // Arguments first: a malformed call (or an unknown tool) is refused before the policy is
  // asked, and the attempt is on record all the same.
  {
    capnp::MallocMessageBuilder scratch;
    auto inv = scratch.initRoot<rpc::ToolInvocation>();
    std::string problem = buildInvocation(call->tool, call->arguments, 1, 3600, inv);
    if (!problem.empty()) {
      audit::Record r = base;
      r.set_kind(audit::DECISION);
      r.mutable_decision()->set_outcome("deny");
      r.mutable_decision()->add_policies("invalid-call");
      r.set_detail(problem);
      try {
        record(std::move(r), false);
      } catch (const std::exception& e) {
        spdlog::error("audit: {}", e.what());
      }
      return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};
    }
    call->args = json::parse(call->arguments.empty() ? std::string("{}") : call->arguments);
  }

  // The request the policy decides on.
  policy::Request request;
  request.principal = call->turn->principal;
  request.action = {"Action", call->tool};
  policy::Value::Record context;
  context["tainted"] = policy::Value::boolean(call->turn->tainted);
  context["confirmed"] = policy::Value::boolean(false);
  context["channel"] = policy::Value::string(call->turn->channel);
  context["chatType"] = policy::Value::string(call->turn->chatType);
  context["mentioned"] = policy::Value::boolean(call->turn->mentioned);
  context["args"] = argumentsRecord(call->args);
  std::vector<PolicyHost::ExtraEntity> extra;
  policy::EntityUid agent{"Agent", settings_.agentId};
  if (isFileTool(call->tool)) {
    std::string raw = call->args["path"].get<std::string>();
    auto checked = checkWorkspacePath(raw.c_str());
    if (checked.is<PathRejection>()) {
      // Refused before the policy is asked: the path leaves the workspace.
      std::string why = checked.get<PathRejection>().message.cStr();
      audit::Record r = base;
      r.set_kind(audit::DECISION);
      r.mutable_decision()->set_outcome("deny");
      r.mutable_decision()->add_policies("workspace-path");
      r.set_detail(why);
      try {
        record(std::move(r), false);
      } catch (const std::exception& e) {
        spdlog::error("audit: {}", e.what());
      }
      return ToolOutcome{ToolOutcome::Status::DENIED, "denied: " + why};
    }
    call->path = checked.get<kj::String>().cStr();
    request.resource = {"File", settings_.agentId + "/" + call->path};
    policy::Value::Record attrs;
    attrs["agent"] = policy::Value::string(settings_.agentId);
    attrs["path"] = policy::Value::string(call->path);
    extra.push_back({request.resource, std::move(attrs), {agent}});
  } else {
    request.resource = agent;
    if (call->tool == "exec") {
      CommandShape shape = commandShape(call->args["command"].get<std::string>());
      context["program"] = policy::Value::string(shape.program);
      context["simple"] = policy::Value::boolean(shape.simple);
    }
  }
  request.context = policy::Value::record(std::move(context));

  policy::Verdict verdict = policy_.decide(request, extra);
  {
    audit::Record r = base;
    r.set_kind(audit::DECISION);
    r.mutable_decision()->set_outcome(policy::outcomeName(verdict.outcome));
    for (auto& p : verdict.policies) r.mutable_decision()->add_policies(p);
    for (auto& e : verdict.errors) r.mutable_decision()->add_errors(e);
    r.set_detail(call->turn->tainted ? "turn is tainted" : "");
    try {
      record(std::move(r), verdict.outcome == policy::Outcome::DENY);
    } catch (const std::exception& e) {
      spdlog::error("audit: {}", e.what());
      return ToolOutcome{ToolOutcome::Status::ERROR,
                         "error: the tool did not run because the audit log cannot be written"};
    }
  }

  if (verdict.outcome == policy::Outcome::DENY) {
    return ToolOutcome{ToolOutcome::Status::DENIED,
                       "denied by policy: " + call->tool + " is not allowed here (" +
                           decisionText(verdict) +
                           "). Tell the user; do not try to get around it."};
  }
  if (verdict.outcome == policy::Outcome::ALLOW) return execute(call);

  // ASK: the owner confirms this exact call.
  std::string identity =
      call->path.empty() ? "" : resolvedIdentity(settings_.workspaceDir, call->path);
  call->fingerprint = audit::sha256Hex(call->turn->sessionKey + '\0' + call->tool + '\0' +
                                       call->args.dump() + '\0' + identity);
  ApprovalRequest ask;
  ask.sessionKey = call->turn->sessionKey;
  ask.runId = call->turn->runId;
  ask.principal = call->turn->principal.str();
  ask.tool = call->tool;
  ask.argumentsJson = call->arguments;
  ask.description = describeCall(call->tool, call->args);
  ask.fingerprint = call->fingerprint;
  ask.policies = verdict.policies;
  if (onAwaitingApproval) onAwaitingApproval();
  return approvals_.request(ask).then(
      [this, call, base, identity](ApprovalOutcome answer) mutable -> kj::Promise<ToolOutcome> {
        audit::Record r = base;
        r.set_kind(audit::APPROVAL);
        r.set_approval_id(answer.id);
        r.set_detail("by " + answer.by + "; fingerprint " + call->fingerprint);
        const char* what = answer.answer == ApprovalOutcome::Answer::APPROVED ? "approved"
                           : answer.answer == ApprovalOutcome::Answer::DENIED ? "denied"
                                                                              : "expired";
        r.set_outcome(what);
        try {
          record(std::move(r), true);
        } catch (const std::exception& e) {
          spdlog::error("audit: {}", e.what());
          return ToolOutcome{ToolOutcome::Status::ERROR,
                             "error: the tool did not run because the audit log cannot be written"};
        }
        if (answer.answer != ApprovalOutcome::Answer::APPROVED) {
          return ToolOutcome{ToolOutcome::Status::DENIED,
                             answer.answer == ApprovalOutcome::Answer::DENIED
                                 ? "denied: the owner did not approve this " + call->tool + " call."
                                 : "denied: nobody approved this " + call->tool +
                                       " call in time. Ask the user to confirm and try again."};
        }
        // The approval covers the object the owner was shown, not whatever the path names now.
        if (!call->path.empty() &&
            resolvedIdentity(settings_.workspaceDir, call->path) != identity) {
          audit::Record changed = base;
          changed.set_kind(audit::DECISION);
          changed.mutable_decision()->set_outcome("deny");
          changed.set_detail("the path resolves to a different file than when it was approved");
          try {
            record(std::move(changed), true);
          } catch (const std::exception& e) {
            spdlog::error("audit: {}", e.what());
          }
          return ToolOutcome{ToolOutcome::Status::DENIED,
                             "denied: " + call->path +
                                 " changed while the call waited for approval; the approved call "
                                 "was not run."};
        }
        return execute(call);
      });
}

kj::Promise<ToolOutcome> Guard::execute(std::shared_ptr<Call> call) {
  bool mutating = isMutating(call->tool);
  // Counted from the moment the snapshot is asked for, so a rollback cannot slip in between.
  if (mutating) ++mutating_;
  auto done = kj::defer([this, mutating]() {
    if (mutating) --mutating_;
  });
  // The snapshot is taken on the snapshot thread (snapshots.h): the loop serves every other
  // session meanwhile. A mutating call never runs without it; a skipped entry is not a failure
  // (the intent record lists it).
  kj::Promise<audit::Snapshot> taken =
      mutating ? snapshots_.takeAsync("before " + call->tool + " " + call->id + " in " +
                                      call->turn->sessionKey)
               : kj::Promise<audit::Snapshot>(audit::Snapshot{});
  return taken
      .then(
          [this, call, mutating](audit::Snapshot snap) -> kj::Promise<ToolOutcome> {
            audit::Record start;
            start.set_kind(audit::TOOL_START);
            start.set_session(call->turn->sessionKey);
            start.set_run_id(call->turn->runId);
            start.set_principal(call->turn->principal.str());
            start.set_tool(call->tool);
            start.set_call_id(call->id);
            start.set_arguments(call->arguments);
            call->snapshot = snap.id;
            start.set_snapshot(call->snapshot);
            audit::addSkipped(start, snap.skipped, snap.incomplete);
            try {
              // The intent is on disk before the effect can happen.
              call->intentSeq = record(start, true);
            } catch (const std::exception& e) {
              spdlog::error("tool {} not run: {}", call->tool, e.what());
              return ToolOutcome{ToolOutcome::Status::ERROR,
                                 "error: the tool did not run because the audit log cannot be "
                                 "written (see the gateway log)"};
            }
            return tools_.run(call->tool, call->arguments, settings_.workspaceDir)
                .then([this, call, mutating,
                       before = kj::mv(snap.skipped)](ToolOutcome outcome) mutable {
                  return afterTool(call, mutating, kj::mv(before), kj::mv(outcome));
                });
          },
          [call](kj::Exception&& e) -> kj::Promise<ToolOutcome> {
            spdlog::error("tool {} not run: the workspace snapshot failed: {}", call->tool,
                          e.getDescription().cStr());
            return ToolOutcome{ToolOutcome::Status::ERROR,
                               "error: the tool did not run because the workspace snapshot "
                               "failed (see the gateway log)"};
          })
      .attach(kj::mv(done));
}

kj::Promise<ToolOutcome> Guard::afterTool(std::shared_ptr<Call> call, bool mutating,
                                          std::vector<audit::Skipped> skippedBefore,
                                          ToolOutcome outcome) {
  audit::Record end;
  end.set_kind(audit::TOOL_END);
  end.set_session(call->turn->sessionKey);
  end.set_run_id(call->turn->runId);
  end.set_principal(call->turn->principal.str());
  end.set_tool(call->tool);
  end.set_call_id(call->id);
  end.set_outcome(outcome.statusName());
  end.set_detail(clipUtf8(outcome.content, 500) +
                 (outcome.exitCode >= 0 && call->tool == "exec"
                      ? " [exit " + std::to_string(outcome.exitCode) + "]"
                      : ""));
  try {
    record(std::move(end), !mutating);
  } catch (const std::exception& e) {
    spdlog::error("audit after {}: {}", call->tool, e.what());
  }
  kj::Promise<void> changed = kj::READY_NOW;
  if (mutating) {
    // Compared on the snapshot thread too; what the call made unreadable is recorded as such.
    changed =
        snapshots_.compareAsync(call->snapshot)
            .then(
                [this, call, before = kj::mv(skippedBefore)](audit::Comparison c) {
                  bool newSkips = c.skipped.size() != before.size();
                  for (size_t i = 0; !newSkips && i < before.size(); ++i)
                    newSkips = c.skipped[i].path != before[i].path;
                  if (!c.files.empty() || newSkips) {
                    audit::Record files;
                    files.set_kind(audit::FILE_CHANGE);
                    files.set_session(call->turn->sessionKey);
                    files.set_run_id(call->turn->runId);
                    files.set_tool(call->tool);
                    files.set_call_id(call->id);
                    files.set_snapshot(call->snapshot);
                    files.set_detail("changed by the call whose intent is record " +
                                     std::to_string(call->intentSeq) +
                                     (newSkips ? "; `skipped` lists what could not be "
                                                 "compared after it"
                                               : ""));
                    audit::addFiles(files, c.files);
                    if (newSkips) audit::addSkipped(files, c.skipped, c.incomplete);
                    record(std::move(files), false);
                  }
                  audit_.sync();
                },
                [this, call](kj::Exception&& e) {
                  spdlog::error("audit after {}: comparing the workspace failed: {}", call->tool,
                                e.getDescription().cStr());
                  audit_.sync();
                })
            .then([] {},
                  [call](kj::Exception&& e) {
                    spdlog::error("audit after {}: {}", call->tool, e.getDescription().cStr());
                  });
  }
  return changed.then([this, call, outcome = kj::mv(outcome)]() mutable {
    // Reading a file that came from outside taints the rest of the turn.
    if (call->tool == "read" && outcome.status == ToolOutcome::Status::OK) {
      for (const auto& prefix : settings_.untrustedPaths) {
        if (call->path.compare(0, prefix.size(), prefix) == 0 || call->path + "/" == prefix) {
          call->turn->tainted = true;
        }
      }
    }
    return kj::mv(outcome);
  });
}

}  // namespace chitin
