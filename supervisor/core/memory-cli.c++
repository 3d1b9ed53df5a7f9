// SPDX-License-Identifier: Apache-2.0
// `chitin memory ...` (see memory-cli.h).
// Runs in: the `chitin` command's process

#include "memory-cli.h"

#include <kj/async-io.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "display-text.h"
#include "uv-kj-bridge.h"

namespace chitin::memory {

namespace {

using nlohmann::json;

constexpr int EXIT_FAIL = 1;
constexpr int EXIT_USAGE = 2;

const char USAGE[] =
    "usage: chitin memory status [--agent NAME]\n"
    "       chitin memory index [--agent NAME]\n"
    "       chitin memory search QUERY [--max N] [--agent NAME]\n";

// A word as the index sees one (workers/memory/memory-index.h ftsQuery): letters, digits, '_'
// and any non-ASCII byte.
bool hasWord(const std::string& text) {
  for (unsigned char c : text)
    if (isalnum(c) || c == '_' || c >= 0x80) return true;
  return false;
}

std::string shownQuoted(const std::string& text) { return "\"" + displayLine(text) + "\""; }

uint64_t number(const json& answer, const char* key) {
  auto it = answer.find(key);
  if (it == answer.end() || !it->is_number_unsigned())
    throw std::runtime_error(std::string("the memory worker's answer has no count \"") + key +
                             "\"");
  return it->get<uint64_t>();
}

json parseAnswer(const std::string& workerJson) {
  json answer = json::parse(workerJson, nullptr, false);
  if (!answer.is_object())
    throw std::runtime_error("the memory worker's answer is not a JSON object");
  return answer;
}

std::string size(uint64_t bytes) {
  char buf[64];
  if (bytes < 1024)
    snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  else if (bytes < (1ULL << 20))
    snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else
    snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  return buf;
}

std::string when(int64_t at, std::time_t now) {
  if (at <= 0) return "never";
  std::time_t t = static_cast<std::time_t>(at);
  struct tm utc;
  gmtime_r(&t, &utc);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &utc);
  int64_t ago = static_cast<int64_t>(now) - at;
  std::string age = ago < 0        ? ""
                    : ago < 120    ? " (" + std::to_string(ago) + " s ago)"
                    : ago < 7200   ? " (" + std::to_string(ago / 60) + " min ago)"
                    : ago < 172800 ? " (" + std::to_string(ago / 3600) + " h ago)"
                                   : " (" + std::to_string(ago / 86400) + " days ago)";
  return buf + age;
}

bool validAgent(const std::string& agent) {
  return !agent.empty() && agent[0] != '.' && agent.find('/') == std::string::npos &&
         agent.size() <= 64;
}

}  // namespace

std::string parseMemoryArgs(const std::vector<std::string>& args, MemoryCliRequest& out) {
  if (args.empty()) return "expected a subcommand: status, index or search QUERY";
  const std::string& sub = args[0];
  if (sub == "status") {
    out.command = MemoryCommand::STATUS;
  } else if (sub == "index") {
    out.command = MemoryCommand::INDEX;
  } else if (sub == "search") {
    out.command = MemoryCommand::SEARCH;
  } else {
    return "unknown subcommand " + shownQuoted(sub) + ": expected status, index or search QUERY";
  }
  bool haveQuery = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--agent") {
      if (i + 1 >= args.size()) return "--agent: expected an agent name after it";
      out.agent = args[++i];
      if (!validAgent(out.agent))
        return "--agent: expected an agent name (no '/', not starting with '.'), got " +
               shownQuoted(out.agent);
    } else if (a == "--max" && out.command == MemoryCommand::SEARCH) {
      if (i + 1 >= args.size())
        return "--max: expected a number of matches (1 to " + std::to_string(rpc::MAX_MEMORY_HITS) +
               ") after it";
      const std::string& n = args[++i];
      bool digits =
          !n.empty() && n.size() <= 3 && n.find_first_not_of("0123456789") == std::string::npos;
      unsigned long v = digits ? std::stoul(n) : 0;
      if (!digits || v < 1 || v > rpc::MAX_MEMORY_HITS)
        return "--max: expected a whole number from 1 to " + std::to_string(rpc::MAX_MEMORY_HITS) +
               ", got " + shownQuoted(n);
      out.maxResults = static_cast<uint32_t>(v);
    } else if (out.command == MemoryCommand::SEARCH && !haveQuery &&
               (a.empty() || a[0] != '-' || a == "-")) {
      out.query = a;
      haveQuery = true;
    } else {
      return "memory " + sub + ": unknown argument " + shownQuoted(a) +
             (out.command == MemoryCommand::SEARCH && haveQuery
                  ? " (quote a query of several words: search \"dentist appointment\")"
                  : "");
    }
  }
  if (out.command == MemoryCommand::SEARCH) {
    if (!haveQuery) return "memory search: expected a QUERY (words to search for)";
    if (out.query.find_first_not_of(" \t\r\n") == std::string::npos)
      return "memory search: the query is empty; expected words to search for";
    if (out.query.size() > MAX_MEMORY_QUERY_BYTES)
      return "memory search: the query is " + std::to_string(out.query.size()) +
             " bytes; expected at most 4 KiB";
    if (!hasWord(out.query))
      return "memory search: the query " + shownQuoted(out.query) +
             " has no word to search for (letters or digits)";
  }
  return "";
}

std::string formatMemoryStatus(const std::string& workerJson, MemoryCommand command,
                               const std::string& agent, std::time_t now) {
  json a = parseAnswer(workerJson);
  uint64_t added = number(a, "added"), changed = number(a, "changed"),
           removed = number(a, "removed"), stale = number(a, "stale");
  int64_t updatedAt = a.value("updatedAt", int64_t(0));
  std::string rebuilt = a.value("rebuiltBecause", std::string());
  std::string out;
  if (command == MemoryCommand::INDEX) {
    out += "Indexed: " + std::to_string(added) + " new, " + std::to_string(changed) + " changed, " +
           std::to_string(removed) + " removed, " + std::to_string(number(a, "unchanged")) +
           " unchanged file(s)\n";
  }
  out += "Memory index of agent " + shownQuoted(agent) + "\n";
  out += "  files indexed  " + std::to_string(number(a, "files")) + "\n";
  out += "  chunks         " + std::to_string(number(a, "chunks")) + "\n";
  out += "  index size     " + size(number(a, "indexBytes")) + "\n";
  out += "  last update    " + when(updatedAt, now) + "\n";
  if (command == MemoryCommand::STATUS) {
    out += "  stale files    " + std::to_string(stale);
    if (stale > 0) {
      out += " (" + std::to_string(added) + " new, " + std::to_string(changed) + " changed, " +
             std::to_string(removed) +
             " removed): `chitin memory index` or the next search updates them";
    }
    out += "\n";
  }
  uint64_t skipped = number(a, "skipped");
  if (skipped > 0) {
    out += "  skipped        " + std::to_string(skipped) +
           " (symlinks, not regular files, over 4 MiB, or a path over 1 KiB)\n";
  }
  if (!rebuilt.empty()) out += "  rebuilt        " + displayLine(rebuilt) + "\n";
  // Embeddings stored by the gateway's memory_search (model.embedding_model), per model.
  if (auto vectors = a.find("vectors"); vectors != a.end() && vectors->is_object()) {
    for (const auto& [model, count] : vectors->items()) {
      if (!count.is_number_unsigned()) continue;
      out += "  embeddings     " + std::to_string(count.get<uint64_t>()) + " chunk text(s) by " +
             shownQuoted(model) + "\n";
    }
  }
  return out;
}

std::string formatMemorySearch(const std::string& workerJson, const std::string& query) {
  json a = parseAnswer(workerJson);
  auto hits = a.find("hits");
  if (hits == a.end() || !hits->is_array())
    throw std::runtime_error("the memory worker's answer has no list of hits");
  auto ranking = a.find("ranking");
  bool hybrid = ranking != a.end() && ranking->is_string() && *ranking == "hybrid";
  std::string out;
  unsigned n = 0;
  for (const auto& hit : *hits) {
    if (!hit.is_object() || !hit.contains("path") || !hit["path"].is_string() ||
        !hit.contains("snippet") || !hit["snippet"].is_string())
      throw std::runtime_error("a hit in the memory worker's answer is not of the known shape");
    uint64_t start = hit.value("startLine", uint64_t(0)), end = hit.value("endLine", uint64_t(0));
    double score = hit.value("score", 0.0);
    char scoreText[32];
    // SQLite's bm25() is lower-is-better; shown negated so that higher is better. A hybrid
    // score is higher-is-better already.
    snprintf(scoreText, sizeof scoreText, "%.2f", hybrid ? score : -score);
    out += displayLine(hit["path"].get<std::string>()) + ":" + std::to_string(start) +
           (end > start ? "-" + std::to_string(end) : "") + "  score " + scoreText + "\n";
    std::string snippet = displayBlock(hit["snippet"].get<std::string>());
    out += "    ";
    for (char c : snippet) out += c == '\n' ? std::string("\n    ") : std::string(1, c);
    out += "\n\n";
    ++n;
  }
  if (n == 0) {
    out += "no matches for " + shownQuoted(query) + " (" + std::to_string(number(a, "files")) +
           " files indexed)\n";
  } else {
    out += std::to_string(n) + (n == 1 ? " match" : " matches") + " for " + shownQuoted(query) +
           (hybrid ? ", best first (score: meaning and keywords, 0 to 1, higher is better)\n"
                   : ", best first (score: BM25 keyword ranking, higher is better)\n");
  }
  return out;
}

int memoryCommand(const std::vector<std::string>& args, const MemoryCliEnv& env, std::ostream& out,
                  std::ostream& err) {
  MemoryCliRequest request;
  std::string problem = parseMemoryArgs(args, request);
  if (!problem.empty()) {
    err << "chitin memory: " << problem << "\n" << USAGE;
    return EXIT_USAGE;
  }
  std::string agent = request.agent.empty() ? env.defaultAgent : request.agent;
  std::string workspace = env.home + "/workspace/" + agent;
  if (access(workspace.c_str(), X_OK) != 0) {
    err << "chitin memory: agent " << shownQuoted(agent) << " has no workspace at "
        << displayLine(workspace)
        << " (the gateway creates it when it first starts; --agent names another agent)\n";
    return EXIT_FAIL;
  }
  if (request.command == MemoryCommand::SEARCH && agent == env.defaultAgent && env.gatewaySearch) {
    GatewayMemoryAnswer answer = env.gatewaySearch(request);
    if (answer.reached && answer.ok) {
      try {
        out << formatMemorySearch(answer.text, request.query);
        return 0;
      } catch (const std::exception& e) {
        answer.text = e.what();
      }
    }
    if (answer.reached) {
      err << "chitin memory search: the gateway's search failed (" << displayLine(answer.text)
          << "); searching here, by keywords\n";
    }
  }
  std::string stateDir = env.home + "/state/memory/" + agent;
  ToolOutcome outcome = env.call(request, workspace, stateDir);
  if (outcome.status != ToolOutcome::Status::OK) {
    std::string text = outcome.content;
    if (text.rfind("error: ", 0) == 0) text = text.substr(7);
    err << "chitin memory " << args[0] << ": " << displayBlock(text) << "\n";
    return EXIT_FAIL;
  }
  try {
    if (request.command == MemoryCommand::SEARCH)
      out << formatMemorySearch(outcome.content, request.query);
    else
      out << formatMemoryStatus(outcome.content, request.command, agent, std::time(nullptr));
  } catch (const std::exception& e) {
    err << "chitin memory " << args[0] << ": " << e.what() << "\n";
    return EXIT_FAIL;
  }
  return 0;
}

ToolOutcome runMemoryWorker(const spawn::SpawnerSettings& settings, const MemoryCliRequest& request,
                            const std::string& workspaceDir, const std::string& stateDir) {
  uv_loop_t loop;
  KJ_ASSERT(uv_loop_init(&loop) == 0);
  std::optional<ToolOutcome> outcome;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SystemSpawnOs os;
    spawn::Spawner spawner(settings, os);
    ToolRunnerSettings toolSettings;
    toolSettings.memoryStateDir = stateDir;
    // The JSON answer whole: it is bounded by the contract (tool.capnp).
    toolSettings.maxOutputBytes = rpc::MAX_MEMORY_RESULT_BYTES;
    ToolRunner runner(&loop, io, spawner, toolSettings);
    auto which = request.command == MemoryCommand::STATUS  ? rpc::ToolInvocation::MEMORY_STATUS
                 : request.command == MemoryCommand::INDEX ? rpc::ToolInvocation::MEMORY_INDEX
                                                           : rpc::ToolInvocation::MEMORY_SEARCH;
    auto call = runner.runMemoryCommand(which, request.query, request.maxResults, workspaceDir)
                    .then([&](ToolOutcome o) { outcome = std::move(o); })
                    .eagerlyEvaluate([&](kj::Exception&& e) {
                      outcome = ToolOutcome{ToolOutcome::Status::ERROR,
                                            "error: " + std::string(e.getDescription().cStr())};
                    });
    // The worker's wall clock (its profile) bounds this wait: WorkerHost kills it then, and the
    // call ends with that outcome.
    bridge.pump();
    while (!outcome) uv_run(&loop, UV_RUN_ONCE);
    call = nullptr;
    bridge.pump();
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return *outcome;
}

}  // namespace chitin::memory
