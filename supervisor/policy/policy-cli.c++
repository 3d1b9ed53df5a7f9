// SPDX-License-Identifier: Apache-2.0
// `chitin policy check|explain|test` (see policy-cli.h).
// Runs in: supervisor (as a command-line tool)

#include "policy-cli.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

namespace chitin::policy {

namespace fs = std::filesystem;

namespace {

constexpr const char* USAGE =
    "usage: policy check [--dir DIR]...\n"
    "       policy explain --principal 'Sender::\"x\"' --action chat --resource 'Agent::\"main\"'\n"
    "                      [--context JSON] [--entities FILE] [--dir DIR]...\n"
    "       policy test FILE\n";

std::optional<std::string> readFile(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Loads policies from dirs (as PolicySet::loadDirs) or single .cedar files into one set, so ids
// are unique across all of them. Prints errors to err.
std::optional<PolicySet> loadPolicies(const std::vector<std::string>& paths, std::ostream& err) {
  PolicySet set;
  std::vector<ParseError> errors;
  auto addPath = [&](const std::string& f) {
    std::string text;
    if (auto error = readPolicyFile(f, &text)) {
      errors.push_back(std::move(*error));
      return;
    }
    for (auto& e : set.addFile(text, f)) errors.push_back(std::move(e));
  };
  for (const std::string& p : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(p, ec);
    if (st.type() == fs::file_type::not_found) continue;
    if (fs::is_regular_file(st)) {
      addPath(p);
      continue;
    }
    std::vector<std::string> files;
    for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".cedar") files.push_back(it->path().string());
    }
    if (ec) {
      errors.push_back(ParseError{p, 0, 0, "cannot list: " + ec.message()});
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) addPath(f);
  }
  if (!errors.empty()) {
    for (const ParseError& e : errors) err << e.str() << "\n";
    return std::nullopt;
  }
  return set;
}

std::optional<EntityUid> parseUidArg(const std::string& name, const std::string& text,
                                     std::ostream& err) {
  std::string error;
  auto uid = parseEntityUid(text, &error);
  if (!uid) err << name << ": " << error << "\n";
  return uid;
}

struct ExplainArgs {
  std::map<std::string, std::string> single;
  std::vector<std::string> dirs;
};

const char* condName(PolicyTrace::Cond c) {
  switch (c) {
    case PolicyTrace::Cond::NOT_EVALUATED:
      return "not evaluated";
    case PolicyTrace::Cond::TRUE:
      return "true";
    case PolicyTrace::Cond::FALSE:
      return "false";
    case PolicyTrace::Cond::ERROR:
      return "error";
  }
  return "?";
}

void printTrace(const Decision& d, std::ostream& out) {
  for (const PolicyTrace& t : d.trace) {
    out << "  " << (t.permit ? "permit " : "forbid ") << t.id << " (" << t.location << "): ";
    if (!t.scopeMatched) {
      out << "scope does not match\n";
      continue;
    }
    out << "scope matches, condition " << condName(t.condition);
    if (t.condition == PolicyTrace::Cond::ERROR) out << ": " << t.error;
    bool decisive =
        std::find(d.determining.begin(), d.determining.end(), t.id) != d.determining.end();
    out << (decisive ? "  <- determining" : "") << "\n";
  }
}

std::string joinIds(const std::vector<std::string>& ids) {
  std::string s;
  for (const std::string& id : ids) s += (s.empty() ? "" : ", ") + id;
  return s.empty() ? "(none)" : s;
}

std::string because(const Verdict& v) {
  if (v.policies.empty()) return " (no policy applied)";
  std::string s;
  for (const std::string& id : v.policies) s += (s.empty() ? " by " : ", ") + id;
  return s;
}

int explainCommand(const std::vector<std::string>& args, const PolicyCliEnv& env, std::ostream& out,
                   std::ostream& err) {
  ExplainArgs a;
  static const char* KNOWN[] = {"--principal", "--action", "--resource", "--context", "--entities"};
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (i + 1 >= args.size()) {
      err << "explain: " << k << " needs a value\n" << USAGE;
      return 2;
    }
    if (k == "--dir") {
      a.dirs.push_back(args[++i]);
    } else if (std::find(std::begin(KNOWN), std::end(KNOWN), k) != std::end(KNOWN)) {
      a.single[k] = args[++i];
    } else {
      err << "explain: unknown argument '" << k << "'\n" << USAGE;
      return 2;
    }
  }
  for (const char* need : {"--principal", "--action", "--resource"}) {
    if (!a.single.count(need)) {
      err << "explain: " << need << " is required\n" << USAGE;
      return 2;
    }
  }
  Request req;
  auto principal = parseUidArg("--principal", a.single["--principal"], err);
  auto resource = parseUidArg("--resource", a.single["--resource"], err);
  std::string error;
  auto action = parseActionArg(a.single["--action"], &error);
  if (!action) err << "--action: " << error << "\n";
  if (!principal || !resource || !action) return 2;
  req.principal = *principal;
  req.action = *action;
  req.resource = *resource;
  if (a.single.count("--context")) {
    try {
      auto j = nlohmann::json::parse(a.single["--context"]);
      if (!j.is_object()) throw std::invalid_argument("expected a JSON object");
      req.context = valueFromJson(j, "context");
    } catch (std::exception& e) {
      err << "--context: expected a JSON object of Cedar values: " << e.what() << "\n";
      return 2;
    }
  }
  std::string entitiesPath =
      a.single.count("--entities") ? a.single["--entities"] : env.entitiesFile;
  auto loaded = loadEntitiesFile(entitiesPath, !a.single.count("--entities"));
  if (auto* msg = std::get_if<std::string>(&loaded)) {
    err << "--entities: " << *msg << "\n";
    return 2;
  }
  Entities& base = std::get<Entities>(loaded);
  Entities entities(&base);
  addImplicitFileEntity(entities, req.resource);
  addImplicitRecipientEntity(entities, req.resource);
  addImplicitHostEntity(entities, req.resource, req.context);
  addImplicitSessionEntity(entities, req.resource);
  auto set = loadPolicies(a.dirs.empty() ? env.policyDirs : a.dirs, err);
  if (!set) return 2;
  Explanation x = explain(*set, entities, req);
  out << "decision: " << outcomeName(x.verdict.outcome) << "\n";
  out << "request: principal " << req.principal.str() << ", action " << req.action.str()
      << ", resource " << req.resource.str() << ", context " << req.context.str() << "\n";
  out << "determining: " << joinIds(x.verdict.policies) << "\n";
  for (const std::string& e : x.verdict.errors) out << "error: " << e << "\n";
  out << "with context.confirmed = false: " << (x.unconfirmed.allow ? "allow" : "deny") << "\n";
  printTrace(x.unconfirmed, out);
  if (x.verdict.outcome != Outcome::ALLOW) {
    out << "with context.confirmed = true: " << (x.confirmed.allow ? "allow" : "deny") << "\n";
    printTrace(x.confirmed, out);
  }
  return 0;
}

int checkCommand(const std::vector<std::string>& args, const PolicyCliEnv& env, std::ostream& out,
                 std::ostream& err) {
  std::vector<std::string> dirs;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--dir" && i + 1 < args.size()) {
      dirs.push_back(args[++i]);
      std::error_code ec;
      if (!fs::exists(dirs.back(), ec)) {
        err << "check: --dir " << dirs.back() << ": no such directory\n";
        return 2;
      }
    } else {
      err << "check: unexpected argument '" << args[i] << "' (expected --dir DIR)\n" << USAGE;
      return 2;
    }
  }
  if (dirs.empty()) dirs = env.policyDirs;
  auto set = loadPolicies(dirs, err);
  if (!set) return 2;
  out << "ok: " << set->size() << " policies in " << set->fileCount() << " files\n";
  return 0;
}

int testCommand(const std::vector<std::string>& args, const PolicyCliEnv& env, std::ostream& out,
                std::ostream& err) {
  if (args.size() != 2) {
    err << "test: expected exactly one FILE\n" << USAGE;
    return 2;
  }
  const std::string& file = args[1];
  std::string error;
  auto text = readFile(file, &error);
  if (!text) {
    err << "test: " << error << "\n";
    return 2;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*text);
  } catch (std::exception& e) {
    err << file << ": not valid JSON: " << e.what() << "\n";
    return 2;
  }
  if (!j.is_object() || !j.contains("requests") || !j["requests"].is_array()) {
    err << file << ": expected {\"requests\": [...]} (with optional \"entities\", \"policies\")\n";
    return 2;
  }
  fs::path dir = fs::path(file).parent_path();
  auto rel = [&](const std::string& p) {
    return fs::path(p).is_absolute() || dir.empty() ? p : (dir / p).string();
  };
  // Entities: a path (relative to the file), an inline array, or the built-in defaults.
  Entities base;
  try {
    if (!j.contains("entities")) {
      base = defaultEntities();
    } else if (j["entities"].is_string()) {
      auto loaded = loadEntitiesFile(rel(j["entities"].get<std::string>()), false);
      if (auto* msg = std::get_if<std::string>(&loaded)) {
        throw std::invalid_argument(file + ": entities: " + *msg);
      }
      base = std::move(std::get<Entities>(loaded));
    } else {
      base = Entities::fromJson(j["entities"], file + ": entities");
    }
  } catch (std::exception& e) {
    err << e.what() << "\n";
    return 2;
  }
  std::vector<std::string> dirs = env.policyDirs;
  if (j.contains("policies")) {
    if (!j["policies"].is_array()) {
      err << file << ": policies: expected an array of directories or .cedar files\n";
      return 2;
    }
    dirs.clear();
    for (const auto& p : j["policies"]) {
      if (!p.is_string()) {
        err << file << ": policies: expected strings\n";
        return 2;
      }
      dirs.push_back(rel(p.get<std::string>()));
    }
  }
  auto set = loadPolicies(dirs, err);
  if (!set) return 2;

  int passed = 0, failed = 0;
  for (size_t i = 0; i < j["requests"].size(); ++i) {
    const nlohmann::json& r = j["requests"][i];
    std::string where = file + ": request " + std::to_string(i);
    Request req;
    std::string name, expect;
    Entities entities(&base);
    try {
      if (!r.is_object()) throw std::invalid_argument("expected an object");
      name = r.value("name", "request " + std::to_string(i));
      where = file + ": request \"" + name + "\"";
      for (const char* k : {"principal", "action", "resource", "expect"}) {
        if (!r.contains(k) || !r[k].is_string()) {
          throw std::invalid_argument(std::string("\"") + k + "\" (a string) is required");
        }
      }
      std::string e;
      auto p = parseEntityUid(r["principal"].get<std::string>(), &e);
      if (!p) throw std::invalid_argument("principal: " + e);
      auto a = parseActionArg(r["action"].get<std::string>(), &e);
      if (!a) throw std::invalid_argument("action: " + e);
      auto res = parseEntityUid(r["resource"].get<std::string>(), &e);
      if (!res) throw std::invalid_argument("resource: " + e);
      req.principal = *p;
      req.action = *a;
      req.resource = *res;
      if (r.contains("context")) {
        if (!r["context"].is_object()) throw std::invalid_argument("context: expected an object");
        req.context = valueFromJson(r["context"], "context");
      }
      expect = r["expect"].get<std::string>();
      if (expect != "allow" && expect != "ask" && expect != "deny") {
        throw std::invalid_argument("expect: expected allow, ask or deny, got \"" + expect + "\"");
      }
      if (r.contains("entities")) {
        Entities extra = Entities::fromJson(r["entities"], "entities");
        for (const auto& ej : extra.toJson()) {
          EntityUid uid = uidFromJson(ej["uid"], "uid");
          const Entity* ent = extra.find(uid);
          entities.add(uid, ent->attrs.asRecord(), ent->parents);
        }
      }
    } catch (std::exception& ex) {
      err << where << ": " << ex.what() << "\n";
      return 2;
    }
    addImplicitFileEntity(entities, req.resource);
    addImplicitRecipientEntity(entities, req.resource);
    addImplicitHostEntity(entities, req.resource, req.context);
    addImplicitSessionEntity(entities, req.resource);
    Verdict v = decide(*set, entities, req);
    std::string got = outcomeName(v.outcome);
    if (got == expect) {
      ++passed;
      out << "ok       " << name << ": " << got << because(v) << "\n";
    } else {
      ++failed;
      out << "MISMATCH " << name << ": expected " << expect << ", got " << got << because(v)
          << "\n";
      for (const std::string& e : v.errors) out << "         error: " << e << "\n";
    }
  }
  out << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

std::variant<Entities, std::string> loadEntitiesFile(const std::string& path,
                                                     bool missingIsDefault) {
  std::error_code ec;
  if (missingIsDefault && (path.empty() || !fs::exists(path, ec))) return defaultEntities();
  std::string error;
  auto text = readFile(path, &error);
  if (!text) return error;
  try {
    return Entities::fromJson(nlohmann::json::parse(*text), path);
  } catch (nlohmann::json::exception& e) {
    return path + ": not valid JSON: " + e.what();
  } catch (std::exception& e) {
    return std::string(e.what());
  }
}

std::optional<EntityUid> parseActionArg(const std::string& text, std::string* error) {
  EntityUid uid{"Action", text};
  if (text.find("::") != std::string::npos) {
    auto parsed = parseEntityUid(text, error);
    if (!parsed) return std::nullopt;
    if (parsed->type != "Action") {
      *error = "expected an action (e.g. exec or Action::\"exec\"), got '" + text + "'";
      return std::nullopt;
    }
    uid = *parsed;
  }
  if (!isKnownAction(uid.id)) {
    *error = "unknown action \"" + uid.id + "\" (known: " + knownActionsList() + ")";
    return std::nullopt;
  }
  return uid;
}

int policyCommand(const std::vector<std::string>& args, const PolicyCliEnv& env, std::ostream& out,
                  std::ostream& err) {
  if (args.empty()) {
    err << USAGE;
    return 2;
  }
  if (args[0] == "check") return checkCommand(args, env, out, err);
  if (args[0] == "explain") return explainCommand(args, env, out, err);
  if (args[0] == "test") return testCommand(args, env, out, err);
  err << "policy: unknown command '" << args[0] << "' (expected check, explain or test)\n" << USAGE;
  return 2;
}

}  // namespace chitin::policy
