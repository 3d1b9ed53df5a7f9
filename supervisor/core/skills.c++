// SPDX-License-Identifier: Apache-2.0
// Skills: front matter, loading with precedence, gating and the prompt list (see skills.h).
// Runs in: supervisor (and the `chitin skills` commands)

#include "skills.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "lazy-library.h"

namespace chitin::skills {

const char* sourceName(Source s) {
  switch (s) {
    case Source::WORKSPACE:
      return "workspace";
    case Source::OWNER:
      return "owner";
    case Source::BUNDLED:
      return "bundled";
  }
  return "?";
}

namespace {

// A parsed YAML node: only what front matter needs (no tags, no anchors).
struct Node {
  enum Kind { SCALAR, SEQ, MAP } kind = SCALAR;
  std::string scalar;
  bool plain = false;  // an unquoted scalar (so `true`, `1` are not strings the author meant)
  std::vector<std::unique_ptr<Node>> items;                        // SEQ
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> map;  // MAP, in order
  const Node* get(const std::string& key) const {
    for (auto& [k, v] : map)
      if (k == key) return v.get();
    return nullptr;
  }
};

// libyaml is opened when a turn first reads a skill's front matter, not at start
// (lazy-library.h).
enum YamlFunction : size_t {
  YAML_PARSER_INITIALIZE,
  YAML_PARSER_SET_INPUT_STRING,
  YAML_PARSER_DELETE,
  YAML_PARSER_PARSE,
  YAML_EVENT_DELETE
};
LazyLibrary& libyaml() {
  static LazyLibrary lib("libyaml-0.so.2",
                         {"yaml_parser_initialize", "yaml_parser_set_input_string",
                          "yaml_parser_delete", "yaml_parser_parse", "yaml_event_delete"});
  return lib;
}

struct YamlParser {
  yaml_parser_t p;
  // Non-empty: the library could not be loaded, and nothing below calls into it.
  std::string missing = libyaml().load();
  explicit YamlParser(const std::string& text) {
    if (!missing.empty()) return;
    libyaml().resolvedAs<decltype(&::yaml_parser_initialize)>(YAML_PARSER_INITIALIZE)(&p);
    libyaml().resolvedAs<decltype(&::yaml_parser_set_input_string)>(YAML_PARSER_SET_INPUT_STRING)(
        &p, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~YamlParser() {
    if (missing.empty())
      libyaml().resolvedAs<decltype(&::yaml_parser_delete)>(YAML_PARSER_DELETE)(&p);
  }
};

struct Event {
  yaml_event_t e;
  bool ok;
  explicit Event(yaml_parser_t* p) {
    ok = libyaml().resolvedAs<decltype(&::yaml_parser_parse)>(YAML_PARSER_PARSE)(p, &e) != 0;
  }
  ~Event() {
    if (ok) libyaml().resolvedAs<decltype(&::yaml_event_delete)>(YAML_EVENT_DELETE)(&e);
  }
};

// Builds the tree from libyaml's events, refusing aliases, more than one document, and anything
// deeper or larger than the bounds (checked per event, so a hostile file costs no recursion
// beyond MAX_YAML_DEPTH).
class TreeBuilder {
 public:
  // Keeps its own copy: libyaml reads the text in place while events are pulled.
  explicit TreeBuilder(std::string text) : text_(std::move(text)), yaml_(text_) {}

  std::unique_ptr<Node> build(std::string& error) {
    if (!yaml_.missing.empty()) return fail(error, "front matter cannot be read: " + yaml_.missing);
    for (;;) {
      Event ev(&yaml_.p);
      if (!ev.ok) return fail(error, yamlError());
      switch (ev.e.type) {
        case YAML_STREAM_START_EVENT:
          break;
        case YAML_DOCUMENT_START_EVENT:
          if (++documents_ > 1) return fail(error, "more than one YAML document");
          break;
        case YAML_DOCUMENT_END_EVENT:
          break;
        case YAML_STREAM_END_EVENT:
          if (!root_) return fail(error, "the front matter is empty");
          return std::move(root_);
        case YAML_ALIAS_EVENT:
          return fail(error, "YAML aliases (*name) are not accepted");
        case YAML_SCALAR_EVENT: {
          if (ev.e.data.scalar.anchor) return fail(error, "YAML anchors (&name) are not accepted");
          auto n = std::make_unique<Node>();
          n->scalar.assign(reinterpret_cast<const char*>(ev.e.data.scalar.value),
                           ev.e.data.scalar.length);
          n->plain = ev.e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
          if (!add(std::move(n), error)) return nullptr;
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          bool seq = ev.e.type == YAML_SEQUENCE_START_EVENT;
          if ((seq ? ev.e.data.sequence_start.anchor : ev.e.data.mapping_start.anchor))
            return fail(error, "YAML anchors (&name) are not accepted");
          if (stack_.size() >= static_cast<size_t>(MAX_YAML_DEPTH))
            return fail(error, "nested deeper than " + std::to_string(MAX_YAML_DEPTH) + " levels");
          auto n = std::make_unique<Node>();
          n->kind = seq ? Node::SEQ : Node::MAP;
          Node* raw = n.get();
          if (!add(std::move(n), error)) return nullptr;
          stack_.push_back(raw);
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          if (!stack_.empty() && stack_.back()->kind == Node::MAP && pendingKey_)
            return fail(error, "a mapping key without a value");
          stack_.pop_back();
          break;
        default:
          break;
      }
    }
  }

 private:
  std::unique_ptr<Node> fail(std::string& error, std::string what) {
    error = std::move(what);
    return nullptr;
  }

  std::string yamlError() {
    std::string what = yaml_.p.problem ? yaml_.p.problem : "invalid YAML";
    return "YAML error at line " + std::to_string(yaml_.p.problem_mark.line + 2) + ": " + what;
  }

  bool add(std::unique_ptr<Node> n, std::string& error) {
    if (++nodes_ > MAX_YAML_NODES) {
      error = "more than " + std::to_string(MAX_YAML_NODES) + " YAML nodes";
      return false;
    }
    if (stack_.empty()) {
      root_ = std::move(n);
      return true;
    }
    Node* top = stack_.back();
    if (top->kind == Node::SEQ) {
      top->items.push_back(std::move(n));
    } else if (!pendingKey_) {
      if (n->kind != Node::SCALAR) {
        error = "a mapping key must be a plain string";
        return false;
      }
      for (auto& [k, v] : top->map)
        if (k == n->scalar) {
          error = "the key \"" + n->scalar + "\" appears twice";
          return false;
        }
      pendingKey_ = std::move(n);
    } else {
      top->map.emplace_back(pendingKey_->scalar, std::move(n));
      pendingKey_.reset();
    }
    return true;
  }

  std::string text_;
  YamlParser yaml_;
  std::unique_ptr<Node> root_;
  std::vector<Node*> stack_;
  std::unique_ptr<Node> pendingKey_;
  size_t nodes_ = 0;
  int documents_ = 0;
};

bool singleLine(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool validName(const std::string& s) {
  if (s.empty() || s.size() > MAX_NAME_CHARS || s.front() == '-' || s.back() == '-') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// A list of short single-line strings; a lone string counts as a list of one (OpenClaw writes
// both).
bool stringList(const Node* n, const std::string& field, std::vector<std::string>& out,
                std::string& error) {
  if (!n) return true;
  std::vector<const Node*> items;
  if (n->kind == Node::SCALAR) {
    items.push_back(n);
  } else if (n->kind == Node::SEQ) {
    for (auto& i : n->items) items.push_back(i.get());
  } else {
    error = field + ": expected a list of strings, got a mapping";
    return false;
  }
  if (items.size() > MAX_LIST_ITEMS) {
    error = field + ": more than " + std::to_string(MAX_LIST_ITEMS) + " entries";
    return false;
  }
  for (auto* i : items) {
    if (i->kind != Node::SCALAR || i->scalar.empty() || i->scalar.size() > 128 ||
        !singleLine(i->scalar)) {
      error = field + ": expected a list of non-empty one-line strings (at most 128 characters)";
      return false;
    }
    out.push_back(i->scalar);
  }
  return true;
}

bool requirements(const Node* meta, Requirements& r, std::string& error) {
  if (!meta) return true;
  if (meta->kind != Node::MAP) {
    error = "metadata: expected a mapping";
    return false;
  }
  // OpenClaw nests its keys under `openclaw` (older skills: `clawdbot`); chitin's own under
  // `chitin` or directly. Exactly one of them may carry requirements.
  const Node* holder = nullptr;
  for (const char* key : {"chitin", "openclaw", "clawdbot"}) {
    const Node* n = meta->get(key);
    if (!n) continue;
    if (n->kind != Node::MAP) {
      error = std::string("metadata.") + key + ": expected a mapping";
      return false;
    }
    if (holder) {
      error = "metadata: requirements under more than one of chitin, openclaw, clawdbot";
      return false;
    }
    holder = n;
  }
  if (!holder)
    holder = meta;
  else if (meta->get("requires") || meta->get("os")) {
    error = "metadata: requirements both at the top and nested";
    return false;
  }
  std::string prefix = holder == meta ? "metadata." : "metadata.<nested>.";
  if (const Node* req = holder->get("requires")) {
    if (req->kind != Node::MAP) {
      error = prefix + "requires: expected a mapping with bins and env";
      return false;
    }
    for (auto& [k, v] : req->map)
      if (k != "bins" && k != "env") {
        // An unknown requirement cannot be checked, so it cannot be called met.
        error = prefix + "requires." + k + ": unknown requirement (expected bins or env)";
        return false;
      }
    if (!stringList(req->get("bins"), prefix + "requires.bins", r.bins, error) ||
        !stringList(req->get("env"), prefix + "requires.env", r.env, error))
      return false;
  }
  return stringList(holder->get("os"), prefix + "os", r.os, error);
}

}  // namespace

std::optional<FrontMatter> parseFrontMatter(const std::string& text, std::string& error) {
  if (text.size() > MAX_SKILL_MD_BYTES) {
    error = "SKILL.md is larger than " + std::to_string(MAX_SKILL_MD_BYTES) + " bytes";
    return std::nullopt;
  }
  if (text.rfind("---\n", 0) != 0 && text.rfind("---\r\n", 0) != 0) {
    error = "SKILL.md must start with a `---` line opening the YAML front matter";
    return std::nullopt;
  }
  size_t start = text.find('\n') + 1, end = std::string::npos;
  for (size_t pos = start; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "---") {
      end = pos;
      break;
    }
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (end == std::string::npos) {
    error = "the front matter has no closing `---` line";
    return std::nullopt;
  }
  if (end - start > MAX_FRONT_MATTER_BYTES) {
    error = "the front matter is larger than " + std::to_string(MAX_FRONT_MATTER_BYTES) + " bytes";
    return std::nullopt;
  }
  TreeBuilder builder(text.substr(start, end - start));
  std::unique_ptr<Node> root = builder.build(error);
  if (!root) return std::nullopt;
  if (root->kind != Node::MAP) {
    error = "the front matter must be a mapping (name: ..., description: ...)";
    return std::nullopt;
  }
  FrontMatter fm;
  const Node* name = root->get("name");
  if (!name || name->kind != Node::SCALAR || !validName(name->scalar)) {
    error = "name: expected 1-64 characters of a-z, 0-9 and '-' (not at either end)";
    return std::nullopt;
  }
  fm.name = name->scalar;
  const Node* desc = root->get("description");
  if (!desc || desc->kind != Node::SCALAR || desc->scalar.empty() ||
      desc->scalar.size() > MAX_DESCRIPTION_CHARS) {
    error = "description: expected a non-empty string of at most " +
            std::to_string(MAX_DESCRIPTION_CHARS) + " characters";
    return std::nullopt;
  }
  fm.description = desc->scalar;
  if (!requirements(root->get("metadata"), fm.requires_, error)) return std::nullopt;
  return fm;
}

std::vector<std::string> unmetRequirements(const Requirements& r, const SandboxView& sandbox) {
  std::vector<std::string> unmet;
  for (const auto& bin : r.bins) {
    bool found = false;
    if (bin.find('/') == std::string::npos && bin != "." && bin != "..") {
      // Where programs most often are first: this runs for every skill at every turn.
      for (const char* sub : {"/bin/", "/local/bin/", "/sbin/"}) {
        std::string p = sandbox.usrRoot + sub + bin;
        struct stat st;
        if (stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
          found = true;
          break;
        }
      }
    }
    if (!found)
      unmet.push_back("requires the program \"" + bin +
                      "\", which the exec sandbox does not have (it sees the host's /usr)");
  }
  for (const auto& var : r.env)
    if (!sandbox.env.count(var))
      unmet.push_back("requires the environment variable " + var +
                      ", which chitin does not give the exec sandbox (its commands start from an "
                      "empty environment: only PATH, HOME and LANG)");
  if (!r.os.empty() && std::find(r.os.begin(), r.os.end(), sandbox.os) == r.os.end()) {
    std::string list;
    for (auto& o : r.os) list += (list.empty() ? "" : ", ") + o;
    unmet.push_back("is for " + list + ", not " + sandbox.os);
  }
  return unmet;
}

namespace {

// Reads SKILL.md below an already opened skill folder: no symlink, a regular file, bounded.
// `st` receives what fstat said of the file read.
bool readSkillMd(int dirFd, std::string& out, std::string& error, struct stat& st,
                 FrontMatterCache* cache, const std::string& path,
                 const FrontMatterCache::Entry** cached) {
  int fd = openat(dirFd, "SKILL.md", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    error = errno == ELOOP    ? "SKILL.md is a symlink (not followed)"
            : errno == ENOENT ? "no SKILL.md in the folder"
                              : std::string("cannot open SKILL.md: ") + strerror(errno);
    return false;
  }
  bool ok = fstat(fd, &st) == 0;
  if (!ok || !S_ISREG(st.st_mode)) {
    close(fd);
    error = "SKILL.md is not a regular file";
    return false;
  }
  if (cache != nullptr) {
    if (const auto* entry = cache->find(path, st)) {  // unchanged since it was parsed
      close(fd);
      *cached = entry;
      return true;
    }
  }
  if (static_cast<size_t>(st.st_size) > MAX_SKILL_MD_BYTES) {
    close(fd);
    error = "SKILL.md is larger than " + std::to_string(MAX_SKILL_MD_BYTES) + " bytes";
    return false;
  }
  out.resize(MAX_SKILL_MD_BYTES + 1);
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    if (got == out.size()) break;
  }
  close(fd);
  out.resize(got);
  if (got > MAX_SKILL_MD_BYTES) {
    error = "SKILL.md grew past " + std::to_string(MAX_SKILL_MD_BYTES) + " bytes while read";
    return false;
  }
  return true;
}

void loadDir(const SkillDir& src, std::vector<Skill>& skills, std::vector<Problem>& problems,
             FrontMatterCache* cache) {
  int root = open(src.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) {
    if (errno != ENOENT)
      problems.push_back(
          {src.path, std::string("cannot open the skills folder: ") +
                         (errno == ELOOP || errno == ENOTDIR ? "it is a symlink or not a directory"
                                                             : strerror(errno))});
    return;
  }
  DIR* d = fdopendir(root);
  if (!d) {
    close(root);
    problems.push_back({src.path, "cannot list the skills folder"});
    return;
  }
  std::vector<std::pair<std::string, unsigned char>> names;  // with the listing's d_type
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n[0] == '.') continue;  // .install-* staging folders
    names.emplace_back(n, e->d_type);
  }
  std::sort(names.begin(), names.end());
  if (names.size() > MAX_SKILLS_PER_SOURCE) {
    problems.push_back({src.path, "more than " + std::to_string(MAX_SKILLS_PER_SOURCE) +
                                      " entries; only the first are read"});
    names.resize(MAX_SKILLS_PER_SOURCE);
  }
  for (const auto& [n, type] : names) {
    std::string dir = src.path + "/" + n;
    // Files beside the skill folders (a README) are not skills, and not problems either.
    if (type == DT_REG) continue;
    struct stat st;
    if (type == DT_UNKNOWN && fstatat(dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
      continue;
    std::string skillMd = dir + "/SKILL.md";
    std::optional<FrontMatter> fm;
    std::string error;
    const FrontMatterCache::Entry* cached = nullptr;
    if (cache != nullptr && type == DT_DIR) {
      // A SKILL.md unchanged since it was parsed needs one stat by path, not the checked opens
      // below. The path would follow the folder had it become a symlink since the listing, but
      // only the very file read through the checked path before (device, inode, size, times)
      // matches the cache, so no other text comes in this way.
      std::string relative = n + "/SKILL.md";
      struct stat fileSt;
      if (fstatat(dirfd(d), relative.c_str(), &fileSt, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISREG(fileSt.st_mode))
        cached = cache->find(skillMd, fileSt);
    }
    if (cached == nullptr) {
      int fd = openat(dirfd(d), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        problems.push_back(
            {dir, errno == ELOOP || errno == ENOTDIR
                      ? "not a skill folder (a symlink or a special file; skills are folders)"
                      : std::string("cannot open: ") + strerror(errno)});
        continue;
      }
      std::string text;
      struct stat fileSt;
      bool read = readSkillMd(fd, text, error, fileSt, cache, skillMd, &cached);
      close(fd);
      if (cached == nullptr && read) {
        fm = parseFrontMatter(text, error);
        if (cache != nullptr) cache->put(skillMd, fileSt, fm, fm ? "" : error);
      }
    }
    if (cached != nullptr) {
      fm = cached->frontMatter;
      error = cached->error;
    }
    if (!fm) {
      problems.push_back({dir + "/SKILL.md", error});
      continue;
    }
    if (fm->name != n) {
      problems.push_back(
          {dir + "/SKILL.md",
           "name: \"" + fm->name + "\" differs from the folder's name \"" + n + "\""});
      continue;
    }
    Skill s;
    s.meta = std::move(*fm);
    s.source = src.source;
    s.dir = dir;
    s.skillMdPath = skillMd;
    skills.push_back(std::move(s));
  }
  closedir(d);
}

}  // namespace

const FrontMatterCache::Entry* FrontMatterCache::find(const std::string& path,
                                                      const struct stat& st) {
  Entry* entry = entries_.find(path, st);
  if (entry != nullptr) entry->load = load_;
  return entry;
}

void FrontMatterCache::put(const std::string& path, const struct stat& st,
                           std::optional<FrontMatter> frontMatter, std::string error) {
  entries_.put(path, st, Entry{std::move(frontMatter), std::move(error), load_}, loadStartNanos_);
}

void FrontMatterCache::beginLoad() {
  ++load_;
  loadStartNanos_ = realtimeNanos();
}

void FrontMatterCache::endLoad() {
  entries_.eraseIf([this](const Entry& e) { return e.load != load_; });
}

Catalog loadCatalog(const std::vector<SkillDir>& dirs, const SandboxView& sandbox,
                    FrontMatterCache* cache) {
  Catalog c;
  std::vector<Skill> all;
  if (cache != nullptr) cache->beginLoad();
  for (const auto& src : dirs) loadDir(src, all, c.problems, cache);
  if (cache != nullptr) cache->endLoad();
  std::map<std::string, Source> winner;
  std::vector<Skill> shadowed;
  for (auto& s : all) {  // `all` is in precedence order: the first of a name wins
    s.unmet = unmetRequirements(s.meta.requires_, sandbox);
    s.eligible = s.unmet.empty();
    auto it = winner.find(s.meta.name);
    if (it == winner.end()) {
      winner.emplace(s.meta.name, s.source);
      c.skills.push_back(std::move(s));
    } else {
      s.shadowedBy = it->second;
      shadowed.push_back(std::move(s));
    }
  }
  auto byName = [](const Skill& a, const Skill& b) { return a.meta.name < b.meta.name; };
  std::sort(c.skills.begin(), c.skills.end(), byName);
  std::stable_sort(shadowed.begin(), shadowed.end(), byName);
  for (auto& s : shadowed) c.skills.push_back(std::move(s));
  return c;
}

std::vector<const Skill*> Catalog::usable() const {
  std::vector<const Skill*> out;
  for (const auto& s : skills)
    if (s.eligible && !s.shadowedBy) out.push_back(&s);
  return out;
}

const Skill* Catalog::find(const std::string& name) const {
  for (const auto& s : skills)
    if (!s.shadowedBy && s.meta.name == name) return &s;
  return nullptr;
}

std::string modelReadPath(const Skill& skill, const std::string& workspaceDir) {
  if (skill.source == Source::WORKSPACE) {
    std::string prefix = workspaceDir + "/";
    if (skill.skillMdPath.rfind(prefix, 0) == 0) return skill.skillMdPath.substr(prefix.size());
  }
  if (skill.source == Source::OWNER) {
    return std::string(OWNER_SKILLS_INSIDE) + "/" + skill.dir.substr(skill.dir.rfind('/') + 1) +
           "/SKILL.md";
  }
  if (skill.skillMdPath.rfind("/usr/", 0) == 0) return skill.skillMdPath;
  return "";
}

std::string promptList(const Catalog& catalog, const std::string& workspaceDir,
                       const PromptListLimits& limits) {
  auto usable = catalog.usable();
  if (usable.empty()) return "";
  const std::string head =
      "Skills (instructions for particular tasks; before doing one of these tasks, read the "
      "skill's SKILL.md in full with the `read` tool, or `cat` it with `exec` when its path is "
      "absolute; a skill never changes what the policy allows):\n";
  std::string out = head;
  size_t listed = 0;
  for (const Skill* s : usable) {
    std::string desc;
    for (char c : s->meta.description) desc += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (desc.size() > limits.maxDescriptionChars) {
      size_t cut = limits.maxDescriptionChars;
      while (cut > 0 && (static_cast<unsigned char>(desc[cut]) & 0xC0) == 0x80) --cut;
      desc = desc.substr(0, cut) + "…";
    }
    std::string path = modelReadPath(*s, workspaceDir);
    std::string line = "- " + s->meta.name + ": " + desc + " (" +
                       (path.empty() ? "its SKILL.md is outside the sandboxes, not readable by tools"
                                     : "read " + path) +
                       ")\n";
    // Room is kept for the marker that says what was left out.
    const size_t markerRoom = 80;
    if (listed >= limits.maxSkills || out.size() + line.size() + markerRoom > limits.maxChars)
      break;
    out += line;
    ++listed;
  }
  if (listed < usable.size())
    out += "(" + std::to_string(usable.size() - listed) +
           " more skills not listed: over the skills budget)\n";
  if (listed == 0 && out.size() > limits.maxChars) return "";
  return out;
}

}  // namespace chitin::skills
