// SPDX-License-Identifier: Apache-2.0
// Policy sets, authorization and the three-outcome decision (see policy.h).
// Runs in: supervisor

#include "policy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace chitin::policy {

std::vector<ParseError> PolicySet::addFile(const std::string& text, const std::string& fileName) {
  std::vector<std::shared_ptr<const Policy>> parsed;
  std::vector<ParseError> errors = parsePolicies(text, fileName, parsed);
  std::unordered_map<std::string, const Policy*> fresh;
  for (const auto& p : parsed) {
    const Policy* first = nullptr;
    if (auto it = ids_.find(p->id); it != ids_.end()) first = policies_[it->second].get();
    if (auto it = fresh.find(p->id); it != fresh.end()) first = it->second;
    if (first != nullptr) {
      errors.push_back(
          ParseError{fileName, p->line, p->column,
                     "duplicate policy id \"" + p->id + "\" (first at " + first->location() + ")"});
    } else {
      fresh.emplace(p->id, p.get());
    }
  }
  ++files_;
  if (!errors.empty()) {
    std::stable_sort(errors.begin(), errors.end(), [](const ParseError& a, const ParseError& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return errors;
  }
  for (auto& p : parsed) {
    ids_.emplace(p->id, policies_.size());
    policies_.push_back(std::move(p));
  }
  reindex();
  return errors;
}

void PolicySet::reindex() {
  byAction_.clear();
  general_.clear();
  for (uint32_t i = 0; i < policies_.size(); ++i) {
    const ScopeConstraint& a = policies_[i]->action;
    if (a.kind == ScopeConstraint::Kind::EQ) {
      byAction_[a.entities[0]];  // the key exists; filled below, in order
    } else {
      general_.push_back(i);
    }
  }
  for (auto& [action, list] : byAction_) {
    for (uint32_t i = 0; i < policies_.size(); ++i) {
      const ScopeConstraint& a = policies_[i]->action;
      if (a.kind != ScopeConstraint::Kind::EQ || a.entities[0] == action) list.push_back(i);
    }
  }
}

const std::vector<uint32_t>& PolicySet::candidates(const EntityUid& action) const {
  auto it = byAction_.find(action);
  return it != byAction_.end() ? it->second : general_;
}

const Policy* PolicySet::find(const std::string& id) const {
  auto it = ids_.find(id);
  return it == ids_.end() ? nullptr : policies_[it->second].get();
}

std::variant<PolicySet, std::vector<ParseError>> PolicySet::loadDirs(
    const std::vector<std::string>& dirs) {
  namespace fs = std::filesystem;
  PolicySet set;
  std::vector<ParseError> errors;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    fs::file_status st = fs::status(dir, ec);
    if (st.type() == fs::file_type::not_found) continue;
    if (ec || !fs::is_directory(st)) {
      errors.push_back(ParseError{dir, 0, 0, "not a readable directory of policies"});
      continue;
    }
    std::vector<std::string> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".cedar") files.push_back(it->path().string());
    }
    if (ec) {
      errors.push_back(ParseError{dir, 0, 0, "cannot list: " + ec.message()});
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
      std::string text;
      if (auto error = readPolicyFile(f, &text)) {
        errors.push_back(std::move(*error));
        continue;
      }
      for (ParseError& e : set.addFile(text, f)) errors.push_back(std::move(e));
    }
  }
  if (!errors.empty()) return errors;
  return set;
}

std::optional<ParseError> readPolicyFile(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ParseError{path, 0, 0, std::string("cannot read: ") + strerror(errno)};
  // One byte past the limit is enough for addFile to refuse the file; the rest is not read. Read
  // in pieces: a buffer of the limit's size, zero-filled first, cost ~4 ms of page faults at
  // every start for a 13 KiB file.
  text->clear();
  char piece[16384];
  while (text->size() <= MAX_POLICY_FILE_BYTES) {
    size_t want = std::min(sizeof(piece), MAX_POLICY_FILE_BYTES + 1 - text->size());
    in.read(piece, static_cast<std::streamsize>(want));
    if (in.bad()) return ParseError{path, 0, 0, std::string("cannot read: ") + strerror(errno)};
    text->append(piece, static_cast<size_t>(in.gcount()));
    if (!in) break;  // the end of the file
  }
  return std::nullopt;
}

namespace {

Decision authorize(const PolicySet& set, const Entities& entities, Ancestors& ancestors,
                   const Request& request, const Value& context, bool withTrace) {
  Decision d;
  EvalEnv env(request, context, entities, ancestors);
  std::vector<const Policy*> permits, forbids;
  auto run = [&](const Policy& p) {
    PolicyTrace* t = nullptr;
    if (withTrace) {
      d.trace.push_back(
          PolicyTrace{p.id, p.permit, false, PolicyTrace::Cond::NOT_EVALUATED, "", p.location()});
      t = &d.trace.back();
    }
    if (!scopeMatches(p, env)) return;
    PolicyResult r = evalConditions(p, env);
    if (t != nullptr) {
      t->scopeMatched = true;
      t->condition = r == PolicyResult::SATISFIED       ? PolicyTrace::Cond::TRUE
                     : r == PolicyResult::NOT_SATISFIED ? PolicyTrace::Cond::FALSE
                                                        : PolicyTrace::Cond::ERROR;
      if (r == PolicyResult::ERROR) t->error = env.error;
    }
    if (r == PolicyResult::ERROR) {
      d.errors.push_back(p.id + ": " + env.error);
    } else if (r == PolicyResult::SATISFIED) {
      (p.permit ? permits : forbids).push_back(&p);
    }
  };
  if (withTrace) {
    for (const auto& p : set.policies()) run(*p);
  } else {
    for (uint32_t i : set.candidates(request.action)) run(*set.policies()[i]);
  }
  d.allow = forbids.empty() && !permits.empty();
  for (const Policy* p : forbids.empty() ? permits : forbids) d.determining.push_back(p->id);
  return d;
}

Value withConfirmed(const Value::Record& context, bool confirmed) {
  Value::Record r = context;
  r.insert_or_assign("confirmed", Value::boolean(confirmed));
  return Value::record(std::move(r));
}

void addErrors(std::vector<std::string>& to, const std::vector<std::string>& from) {
  for (const std::string& e : from) {
    if (std::find(to.begin(), to.end(), e) == to.end()) to.push_back(e);
  }
}

Explanation explainImpl(const PolicySet& set, const Entities& entities, const Request& request,
                        bool withTrace) {
  Explanation x;
  if (!request.context.isRecord()) {
    x.verdict.errors.push_back("request: context must be a record, got " +
                               std::string(kindName(request.context.kind())));
    return x;
  }
  const Value::Record& ctx = request.context.asRecord();
  // One request, two evaluations: each entity's ancestors are resolved once for both.
  Ancestors ancestors(entities);
  x.unconfirmed =
      authorize(set, entities, ancestors, request, withConfirmed(ctx, false), withTrace);
  x.verdict.errors = x.unconfirmed.errors;
  if (x.unconfirmed.allow) {
    x.verdict.outcome = Outcome::ALLOW;
    x.verdict.policies = x.unconfirmed.determining;
    return x;
  }
  x.confirmed = authorize(set, entities, ancestors, request, withConfirmed(ctx, true), withTrace);
  addErrors(x.verdict.errors, x.confirmed.errors);
  if (x.confirmed.allow) {
    x.verdict.outcome = Outcome::ASK;
    x.verdict.policies = x.confirmed.determining;
    x.verdict.heldBy = x.unconfirmed.determining;
    return x;
  }
  x.verdict.outcome = Outcome::DENY;
  // The forbids that would still deny after confirmation are the decisive ones; if none, the
  // ones that denied the unconfirmed call (a deny with no policies means no permit applied).
  x.verdict.policies =
      !x.confirmed.determining.empty() ? x.confirmed.determining : x.unconfirmed.determining;
  return x;
}

}  // namespace

Decision isAuthorized(const PolicySet& policies, const Entities& entities, const Request& request,
                      bool withTrace) {
  Ancestors ancestors(entities);
  return authorize(policies, entities, ancestors, request, request.context, withTrace);
}

const char* outcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::ALLOW:
      return "allow";
    case Outcome::ASK:
      return "ask";
    case Outcome::DENY:
      return "deny";
  }
  return "deny";
}

Verdict decide(const PolicySet& policies, const Entities& entities, const Request& request) {
  return explainImpl(policies, entities, request, false).verdict;
}

Explanation explain(const PolicySet& policies, const Entities& entities, const Request& request) {
  return explainImpl(policies, entities, request, true);
}

}  // namespace chitin::policy
