// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the whole path of a model's reply into an effect (issue 8 §1). A provider's reply
// goes through the model worker's SSE framer and OpenAI assembler into the Completion the worker
// sends; the supervisor checks it where it enters (checkAssistantMessage), records it as a
// transcript entry, and runs every tool call through the real guard: policy decision,
// confirmation (asked and answered), snapshot, intent record, the tool (a fake that does
// nothing), the changed-files record and the taint rules.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 holds flags (bit 0: a whole JSON reply instead of a stream; bit 1: the session
// is tainted; bit 2: the owner approves what asks, else denies; bit 3: the sender is a stranger,
// not the owner); the rest is the provider's reply. Checks beyond "no crash and no sanitizer
// report": a reply the bounds let in is recorded and every call of it gets an outcome in valid
// UTF-8; a reply they refuse runs nothing.

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "audit-log.h"
#include "fuzz-support.h"
#include "guard.h"
#include "openai-chat.h"
#include "provider.h"
#include "sse.h"
#include "transcript.h"
#include "turn.h"
#include "utf8.h"

namespace chitin::fuzz {
namespace {

// Owners' calls ask (so the approval path, its description and fingerprint run), strangers'
// are denied: both evaluations of every request, and no effect without an answer.
const char POLICY[] = R"(@id("fuzz-ask")
permit (principal == Sender::"local:operator", action, resource) when { context.confirmed };
)";

class NoopTools final : public ToolExecutor {
 public:
  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* = nullptr) override {
    ++calls;
    return ToolOutcome{ToolOutcome::Status::OK, "ran " + tool};
  }
  uint64_t calls = 0;
};

struct World {
  std::string root;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::unique_ptr<PolicyHost> policy;
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<audit::Snapshots> snapshots;
  std::unique_ptr<UntrustedFiles> untrusted;
  std::unique_ptr<ApprovalBook> approvals;
  std::unique_ptr<TranscriptStore> transcripts;
  std::vector<gateway::ApprovalInfo> asked;
  NoopTools tools;
  std::unique_ptr<Guard> guard;

  World() {
    quietLogs();
    // Memory-backed when it can be: every call appends to the audit log and the transcript.
    char tmpl[] = "/dev/shm/chitin-fuzz-guard-XXXXXX";
    char fallback[] = "/tmp/chitin-fuzz-guard-XXXXXX";
    const char* made = mkdtemp(tmpl);
    root = made != nullptr ? made : mkdtemp(fallback);
    for (const char* d : {"/ws", "/ws/downloads", "/policies", "/sessions"}) {
      mkdir((root + d).c_str(), 0700);
    }
    std::ofstream(root + "/ws/downloads/page.html") << "<p>obey</p>";
    std::ofstream(root + "/policies/fuzz.cedar") << POLICY;
    PolicyHostSettings ps;
    ps.policyDirs = {root + "/policies"};
    ps.entitiesPath = root + "/entities.json";
    policy = std::make_unique<PolicyHost>(ps);
    audit = audit::AuditLog::open(root + "/audit");
    snapshots = std::make_unique<audit::Snapshots>(root + "/snapshots.git", root + "/ws");
    untrusted = std::make_unique<UntrustedFiles>(root + "/untrusted.json");
    approvals = std::make_unique<ApprovalBook>(
        io.provider->getTimer(), 60, [this](const gateway::ApprovalInfo& i) { asked.push_back(i); },
        [](const gateway::ApprovalResolved&) {});
    transcripts = std::make_unique<TranscriptStore>(root + "/sessions");
    GuardSettings settings;
    settings.workspaceDir = root + "/ws";
    settings.untrustedPaths = {"downloads/"};
    guard = std::make_unique<Guard>(*policy, *approvals, *audit, *snapshots, tools, *untrusted,
                                    settings);
  }
};

World& world() {
  static World* w = new World();  // lives for the whole run (libFuzzer never returns)
  return *w;
}

model::Outcome assemble(uint8_t flags, std::string_view body) {
  model::OpenAiChatAssembler assembler([](std::string_view) {});
  if (flags & 1) {
    assembler.onWholeResponse(body);
  } else {
    SseParser parser;
    parser.feed(body, [&](const SseEvent& event) { return assembler.onEvent(event); });
  }
  return assembler.finish();
}

}  // namespace
}  // namespace chitin::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace chitin;
  if (size < 1) return 0;
  auto& w = fuzz::world();
  uint8_t flags = data[0];
  model::Outcome outcome =
      fuzz::assemble(flags, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));

  // What the model worker sends, read back as the supervisor reads it.
  capnp::MallocMessageBuilder sent;
  model::fillCompletion(sent.initRoot<rpc::Completion>(), outcome);
  auto words = capnp::messageToFlatArray(sent);
  capnp::FlatArrayMessageReader received(words);
  auto completion = received.getRoot<rpc::Completion>();
  if (!completion.isMessage()) return 0;
  auto message = completion.getMessage();

  uint64_t callsBefore = w.tools.calls;
  std::string problem = checkAssistantMessage(message);
  if (!problem.empty()) {
    FUZZ_CHECK(isValidUtf8(kj::ArrayPtr<const char>(problem.data(), problem.size())), problem);
    return 0;  // refused whole: nothing recorded, nothing run
  }
  TranscriptEntry entry;
  try {
    entry = assistantEntryFrom(message);
  } catch (const kj::Exception&) {
    return 0;  // more calls than any model makes: the worker is at fault, nothing runs
  }
  w.transcripts->append("agent:main:fuzz:direct:owner", entry);

  auto turn = std::make_shared<TurnFacts>();
  turn->sessionKey = "agent:main:fuzz:direct:owner";
  turn->runId = "run";
  turn->principal = (flags & 8) ? policy::EntityUid{"Sender", "telegram:9"} : localOperator();
  if (flags & 2) turn->taint("a message from a stranger");
  size_t answered = 0;
  for (const auto& call : entry.toolCalls) {
    auto promise =
        w.guard->run(turn, call.id, call.name, call.arguments, nullptr).eagerlyEvaluate(nullptr);
    w.io.waitScope.poll();
    for (; answered < w.asked.size(); ++answered) {
      const auto& info = w.asked[answered];
      FUZZ_CHECK(isValidUtf8(kj::ArrayPtr<const char>(info.description().data(),
                                                      info.description().size())),
                 "approval description");
      w.approvals->resolve(info.id(), (flags & 4) != 0, "local:operator");
    }
    ToolOutcome result = promise.wait(w.io.waitScope);
    FUZZ_CHECK(isValidUtf8(kj::ArrayPtr<const char>(result.content.data(), result.content.size())),
               result.content);
    TranscriptEntry toolEntry;
    toolEntry.role = "tool";
    toolEntry.toolCallId = call.id;
    toolEntry.toolName = call.name;
    toolEntry.content = result.content;
    w.transcripts->append(turn->sessionKey, toolEntry);
  }
  // A stranger's calls are denied before anything runs.
  if (flags & 8) FUZZ_CHECK(w.tools.calls == callsBefore, "a stranger's call ran");
  return 0;
}
