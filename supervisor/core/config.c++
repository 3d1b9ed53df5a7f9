// SPDX-License-Identifier: Apache-2.0
// chitin.conf loading (see config.h).
// Runs in: supervisor

#include "config.h"

#include "web-search-tool.h"

#include <fcntl.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "compaction.h"
#include "policy-model.h"
#include "rules.h"
#include "session-reset.h"

namespace chitin {

const char EXAMPLE_CONFIG[] = R"(# chitin.conf -- protobuf text format (schema: proto/config.proto).
# Lines starting with '#' are comments. Every setting below is optional; the values shown
# commented out are the defaults.

gateway {
  # Where the gateway (HTTP + WebSocket) listens. Keep it on loopback unless you put a TLS
  # proxy in front; every client must present the token in $CHITIN_HOME/gateway.token anyway.
  # bind: "127.0.0.1"
  # port: 18789
  # Extra browser origins allowed to open the WebSocket (the gateway's own always are).
  # allowed_origins: "https://chat.example.org"
  # max_frame_bytes: 1048576
  # max_connections: 1024
  # failed authentication is slowed (a correct token always gets in): from the 5th failure of
  # an address within 60 s, each failing connection is answered later (250 ms, doubling, to 60 s)
  # auth_failures_before_lockout: 5
  # lockout_seconds: 60
}

model {
  # OPENAI works with any OpenAI-compatible /v1/chat/completions endpoint (OpenAI, Ollama,
  # vLLM, llama.cpp server); ANTHROPIC speaks the Messages API. The environment variables
  # CHITIN_MODEL_PROVIDER, CHITIN_MODEL_BASE_URL, CHITIN_MODEL, CHITIN_MODEL_API_KEY and
  # CHITIN_MODEL_API_KEY_FILE override these.
  # provider: OPENAI
  # base_url: "http://127.0.0.1:11434/v1"
  # model: "llama3.1"
  # The key is read by the supervisor only and handed to the model worker in memory.
  # api_key_file: "/home/me/.config/chitin/openai.key"
  # max_tokens: 4096
  # request_timeout_seconds: 120
  # max_retries: 3
  # Further models of this provider a session may switch to with /model NAME.
  # alternatives: ["llama3.1:70b"]
  # memory_search ranks by meaning too (hybrid with keywords) with the provider's embeddings
  # model (OPENAI-compatible providers only).
  # embedding_model: "nomic-embed-text"
}

agent {
  # id: "main"
  # system_prompt: "You are chitin, a careful assistant ..."
  # max_steps: 16
  # session_idle_seconds: 600
  # tool_timeout_seconds: 120
  # max_tool_output_bytes: 65536
  # time_zone: "Europe/Berlin"   # default: the host's
  # prompt_file_max_chars: 20000
  # prompt_files_max_chars: 60000
  # Tool sandboxes built ahead of need, each used by one call only; 0 = none.
  # spare_sandboxes: 8
  # Start sessions over on their own (the old conversation archived, like /new), checked when
  # the next message arrives. Off unless set.
  # session_reset { daily_at: "04:00"  idle_minutes: 0 }
  # Summarize older turns before a request would pass context_window_tokens - reserve_tokens
  # (the transcript keeps every line; /compact does it by hand).
  # compaction { context_window_tokens: 128000  reserve_tokens: 16384  keep_recent_tokens: 20000
  #              memory_flush: true }
}

sandbox {
  # bwrap_path: "/usr/bin/bwrap"
  # profile_dir: ""   # default: the shipped sandbox-profiles/
  # worker_dir: ""    # default: next to the chitin binary
}

policy {
  # Every effect is decided by the Cedar policies in the package's policies/ and in
  # $CHITIN_HOME/policies/ (`chitin policy check` validates them; SIGHUP or
  # `chitin policy reload` loads changes). Set false to use only your own files.
  # include_shipped: true
  # How long a call that needs your confirmation waits before it is denied.
  # approval_timeout_seconds: 300
  # Content from outside lives here: reading it taints the session (writes and commands then
  # ask), and commands of an untainted session do not see these directories at all.
  # untrusted_paths: "downloads/"
  # untrusted_paths: "inbox/"
  # In group chats the assistant answers only when mentioned (or a message matches one of these).
  # mention_patterns: "@chitin"
}

web_search {
  # The web_search tool's provider: "duckduckgo" (default; no key), "brave" (Search API; key in
  # $CHITIN_HOME/credentials/brave-search, mode 0600) or "searxng" (your instance's JSON API).
  # provider: "brave"
  # url: "https://searx.example.org/"
}

egress {
  # Workers that need the network (the model client, channels) reach it only through the
  # supervisor's egress broker, each to its own hosts: the model its base_url's host:port.
  # Loopback, private, link-local, CGNAT and metadata addresses are refused unless you named
  # the destination by an IP literal or "localhost" in a setting (model base_url
  # "http://127.0.0.1:11434/v1" is allowed as written), or list its exact host:port here:
  # allow_private: "ollama.lan:11434"
  # connect_timeout_seconds: 15
  # max_connection_seconds: 86400
  # max_connections_per_worker: 16
  # For tests and homelab overrides only: names resolved from this file (absolute path; format
  # in supervisor/egress/hosts-file-resolver.h), answers still judged as above.
  # resolver_hosts_file: "/etc/chitin/hosts"
}

snapshots {
  # A snapshot of the workspace is taken before every exec/write/edit (`chitin rollback` goes
  # back to one). What it cannot take (unreadable, too deep, too large...) is skipped and listed
  # in the audit log, never a reason to stop the call.
  # keep_days: 30
  # keep_snapshots: 1000
  # max_store_bytes: 2147483648
  # max_depth: 256
  # max_entries: 200000
  # max_file_bytes: 67108864
  # max_snapshot_bytes: 1073741824
  # time_limit_seconds: 60
}

# Chat platforms (README "Channels"): one sandboxed worker per account, holding only that
# account's credential ($CHITIN_HOME/credentials/<kind>-<account>, mode 0600; `chitin channels
# add` writes it and these lines). Strangers who message the assistant get a pairing code.
# channels {
#   account {
#     kind: "telegram"          # telegram | discord | slack | signal | irc | email | whatsapp
#     # account: "default"      # [a-z0-9_-]{1,32}: several accounts of one kind need names
#     # credential_file: "/home/me/.config/chitin/telegram.token"
#     # options { key: "apiRoot" value: "https://api.telegram.org" }
#     # egress: "files.example.org:443"   # more hosts this account may reach
#     # disabled: true
#   }
#   # ack_reaction: "👀"         # on receipt of a message the assistant answers; "" = none
#   # max_attachment_bytes: 20971520
# }
)";

const char NO_MODEL_MESSAGE[] =
    "No model is configured, so I cannot answer yet. Set one in $CHITIN_HOME/chitin.conf "
    "(model { provider: OPENAI base_url: \"...\" model: \"...\" api_key_file: \"...\" }) or start "
    "the gateway with CHITIN_MODEL_PROVIDER=openai|anthropic, CHITIN_MODEL_BASE_URL, CHITIN_MODEL "
    "and CHITIN_MODEL_API_KEY (or CHITIN_MODEL_API_KEY_FILE) set, then restart `chitin gateway`.";

const std::vector<std::string>& channelKinds() {
  // One list (policy-model.h): a session key's channel maps to its Sender by it.
  static const std::vector<std::string> kinds(policy::CHAT_CHANNEL_KINDS.begin(),
                                              policy::CHAT_CHANNEL_KINDS.end());
  return kinds;
}

bool plainName(const std::string& name, size_t maxLength) {
  if (name.empty() || name.size() > maxLength) return false;
  for (char ch : name) {
    if (!(islower(static_cast<unsigned char>(ch)) || isdigit(static_cast<unsigned char>(ch)) ||
          ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

namespace {

class LineColumnCollector final : public google::protobuf::io::ErrorCollector {
 public:
  explicit LineColumnCollector(std::string path) : path_(std::move(path)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      // The parser counts from 0; editors count from 1.
      first_ = path_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
               message;
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string path_;
  std::string first_;
};

void fillChannelDefaults(config::ChannelsConfig& ch) {
  for (auto& a : *ch.mutable_account()) {
    if (a.account().empty()) a.set_account("default");
  }
  if (!ch.has_ack_reaction()) ch.set_ack_reaction("\xF0\x9F\x91\x80");  // U+1F440 eyes
  if (ch.max_attachment_bytes() == 0) ch.set_max_attachment_bytes(20u << 20);
}

void validateChannels(const config::ChannelsConfig& ch, const std::string& path) {
  auto fail = [&](const std::string& what) { throw ConfigError(path + ": " + what); };
  std::set<std::string> seen;
  for (int i = 0; i < ch.account_size(); ++i) {
    const auto& a = ch.account(i);
    std::string where = "channels.account[" + std::to_string(i) + "]";
    const auto& kinds = channelKinds();
    if (std::find(kinds.begin(), kinds.end(), a.kind()) == kinds.end()) {
      std::string list;
      for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
      fail(where + ".kind: expected one of " + list + ", got \"" + a.kind() + "\"");
    }
    where = "channels.account[" + std::to_string(i) + "] (" + a.kind() + ")";
    if (!plainName(a.account(), 32))
      fail(where + ".account: expected 1-32 of a-z 0-9 _ -, got \"" + a.account() + "\"");
    if (!seen.insert(a.kind() + "-" + a.account()).second)
      fail(where + ": account \"" + a.account() + "\" of " + a.kind() +
           " is configured twice (name the second one with account: \"...\")");
    if (!a.credential_file().empty() && a.credential_file()[0] != '/')
      fail(where + ".credential_file: expected an absolute path, got \"" + a.credential_file() +
           "\"");
    for (const auto& [key, value] : a.options()) {
      bool keyOk = !key.empty() && key.size() <= 64 && isalpha(static_cast<unsigned char>(key[0]));
      for (char c : key) keyOk = keyOk && (isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!keyOk)
        fail(where + ".options: expected a key of letters, digits and _, got \"" + key + "\"");
      if (value.size() > 4096 || value.find_first_of(std::string("\0\r\n", 3)) != std::string::npos)
        fail(where + ".options[" + key + "]: expected one line of at most 4096 bytes");
    }
    for (const auto& e : a.egress()) {
      try {
        egress::parseRule(e, where + ".egress", false);  // the broker's own parser
      } catch (const egress::RuleError& error) {
        fail(error.what());
      }
    }
  }
  if (ch.ack_reaction().size() > 64) fail("channels.ack_reaction: expected at most 64 bytes");
  // Attachments travel inside one Cap'n Proto message, whose reader stops at 64 MiB.
  if (ch.max_attachment_bytes() > MAX_CHANNEL_ATTACHMENT_BYTES)
    fail("channels.max_attachment_bytes must be at most " +
         std::to_string(MAX_CHANNEL_ATTACHMENT_BYTES) + " (32 MiB)");
}

void fillDefaults(config::ChitinConfig& c) {
  auto* g = c.mutable_gateway();
  if (g->bind().empty()) g->set_bind("127.0.0.1");
  if (g->port() == 0) g->set_port(18789);
  if (g->max_frame_bytes() == 0) g->set_max_frame_bytes(1 << 20);
  if (g->auth_failures_before_lockout() == 0) g->set_auth_failures_before_lockout(5);
  if (g->lockout_seconds() == 0) g->set_lockout_seconds(60);
  if (g->max_connections() == 0) g->set_max_connections(1024);
  auto* a = c.mutable_agent();
  if (a->id().empty()) a->set_id("main");
  if (a->max_steps() == 0) a->set_max_steps(16);
  if (a->session_idle_seconds() == 0) a->set_session_idle_seconds(600);
  if (a->tool_timeout_seconds() == 0) a->set_tool_timeout_seconds(120);
  if (a->max_tool_output_bytes() == 0) a->set_max_tool_output_bytes(65536);
  if (a->prompt_file_max_chars() == 0) a->set_prompt_file_max_chars(20000);
  if (a->prompt_files_max_chars() == 0) a->set_prompt_files_max_chars(60000);
  if (!a->has_spare_sandboxes()) a->set_spare_sandboxes(8);
  auto* k = a->mutable_compaction();
  if (k->context_window_tokens() == 0) k->set_context_window_tokens(128000);
  if (k->reserve_tokens() == 0) k->set_reserve_tokens(16384);
  if (k->keep_recent_tokens() == 0) k->set_keep_recent_tokens(20000);
  if (!k->has_memory_flush()) k->set_memory_flush(true);
  auto* s = c.mutable_sandbox();
  if (s->bwrap_path().empty()) s->set_bwrap_path("/usr/bin/bwrap");
  auto* p = c.mutable_policy();
  if (!p->has_include_shipped()) p->set_include_shipped(true);
  if (p->approval_timeout_seconds() == 0) p->set_approval_timeout_seconds(300);
  if (p->untrusted_paths().empty()) {
    p->add_untrusted_paths("downloads/");
    p->add_untrusted_paths("inbox/");
  }
  if (p->mention_patterns().empty()) p->add_mention_patterns("@chitin");
  auto* n = c.mutable_snapshots();
  if (n->keep_days() == 0) n->set_keep_days(30);
  if (n->keep_snapshots() == 0) n->set_keep_snapshots(1000);
  if (n->max_store_bytes() == 0) n->set_max_store_bytes(2ull << 30);
  if (n->max_depth() == 0) n->set_max_depth(256);
  if (n->max_entries() == 0) n->set_max_entries(200'000);
  if (n->max_file_bytes() == 0) n->set_max_file_bytes(64ull << 20);
  if (n->max_snapshot_bytes() == 0) n->set_max_snapshot_bytes(1ull << 30);
  if (n->time_limit_seconds() == 0) n->set_time_limit_seconds(60);
  fillChannelDefaults(*c.mutable_channels());
  auto* e = c.mutable_egress();
  if (e->connect_timeout_seconds() == 0) e->set_connect_timeout_seconds(15);
  if (e->max_connection_seconds() == 0) e->set_max_connection_seconds(86400);
  if (e->max_connections_per_worker() == 0) e->set_max_connections_per_worker(16);
}

void validate(const config::ChitinConfig& c, const std::string& path) {
  auto fail = [&](const std::string& what) { throw ConfigError(path + ": " + what); };
  if (c.gateway().port() > 65535) fail("gateway.port must be 1..65535");
  if (c.gateway().max_connections() > 16384)
    fail("gateway.max_connections must be at most 16384, got " +
         std::to_string(c.gateway().max_connections()));
  for (char ch : c.agent().id()) {
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
      fail("agent.id may contain only letters, digits, '-' and '_' (got \"" + c.agent().id() +
           "\")");
    }
  }
  if (c.agent().id().size() > 32) fail("agent.id is longer than 32 characters");
  if (c.agent().max_steps() > 256) fail("agent.max_steps must be at most 256");
  if (c.agent().tool_timeout_seconds() > 3600)
    fail("agent.tool_timeout_seconds must be at most 3600");
  if (c.agent().prompt_file_max_chars() > 1'000'000 ||
      c.agent().prompt_files_max_chars() > 1'000'000)
    fail("agent.prompt_file_max_chars and agent.prompt_files_max_chars must be at most 1000000");
  if (c.agent().spare_sandboxes() > 64)
    fail("agent.spare_sandboxes must be at most 64 (each is a waiting sandbox), got " +
         std::to_string(c.agent().spare_sandboxes()));
  if (const std::string& tz = c.agent().time_zone(); !tz.empty()) {
    bool plain = tz.size() <= 64 && tz[0] != '/' && tz.find("..") == std::string::npos &&
                 std::all_of(tz.begin(), tz.end(), [](char ch) {
                   return isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' ||
                          ch == '-' || ch == '+';
                 });
    struct stat st {};
    if (!plain || stat(("/usr/share/zoneinfo/" + tz).c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      fail("agent.time_zone: \"" + tz +
           "\" is not a time zone in /usr/share/zoneinfo (expected a name such as "
           "\"Europe/Berlin\" or \"UTC\"; package tzdata)");
  }
  try {
    sessionResetPolicy(c.agent().session_reset().daily_at(),
                       c.agent().session_reset().idle_minutes());
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  if (auto problem = checkCompactionSettings(compactionSettingsFrom(c.agent().compaction()));
      !problem.empty()) {
    fail(problem);
  }
  if (c.policy().approval_timeout_seconds() > 86400)
    fail("policy.approval_timeout_seconds must be at most 86400");
  // The snapshot tree is written recursively, one level per directory: its depth stays small.
  if (c.snapshots().max_depth() > 1024) fail("snapshots.max_depth must be at most 1024");
  if (c.snapshots().time_limit_seconds() > 3600)
    fail("snapshots.time_limit_seconds must be at most 3600");
  validateChannels(c.channels(), path);
  if (c.egress().connect_timeout_seconds() > 300)
    fail("egress.connect_timeout_seconds must be at most 300");
  if (c.egress().max_connection_seconds() > 7 * 86400)
    fail("egress.max_connection_seconds must be at most 604800 (7 days)");
  if (c.egress().max_connections_per_worker() > 1024)
    fail("egress.max_connections_per_worker must be at most 1024");
  try {
    egress::checkEgressConfig(c.egress());
  } catch (const egress::RuleError& e) {
    fail(e.what());
  }
  try {
    searchProvider(c.web_search(), "");
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  for (const auto& prefix : c.policy().untrusted_paths()) {
    if (prefix.empty() || prefix[0] == '/' || prefix.find("..") != std::string::npos)
      fail("policy.untrusted_paths: expected a path relative to the workspace, got \"" + prefix +
           "\"");
  }
}

}  // namespace

std::string ModelSettings::providerName() const {
  switch (provider) {
    case config::ModelConfig::OPENAI:
      return "openai";
    case config::ModelConfig::ANTHROPIC:
      return "anthropic";
    default:
      return "none";
  }
}

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

config::ChitinConfig parseConfig(const std::string& text, const std::string& path) {
  config::ChitinConfig c;
  google::protobuf::TextFormat::Parser parser;
  LineColumnCollector errors(path);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &c)) {
    throw ConfigError(errors.first().empty() ? path + ": cannot parse" : errors.first());
  }
  fillDefaults(c);
  validate(c, path);
  return c;
}

config::ChitinConfig loadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno != ENOENT) throw ConfigError(path + ": cannot read: " + strerror(errno));
    // Written whole to a temporary name, then linked into place: a crash leaves either no
    // config or the whole example, and link() never replaces a config someone wrote meanwhile.
    std::string tmp = path + ".new";
    unlink(tmp.c_str());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw ConfigError(tmp + ": cannot create: " + strerror(errno));
    size_t len = sizeof(EXAMPLE_CONFIG) - 1;
    bool ok = write(fd, EXAMPLE_CONFIG, len) == static_cast<ssize_t>(len) && fsync(fd) == 0;
    close(fd);
    bool linked = ok && link(tmp.c_str(), path.c_str()) == 0;
    int saved = errno;
    unlink(tmp.c_str());
    if (!linked && !(ok && saved == EEXIST))
      throw ConfigError(path + ": cannot write the example config: " + strerror(saved));
    if (!linked) return loadConfigFile(path);  // someone else's config won the race
    return parseConfig(EXAMPLE_CONFIG, path);
  }
  std::stringstream text;
  text << in.rdbuf();
  return parseConfig(text.str(), path);
}

bool ModelSettings::offers(const std::string& name) const {
  return name == model || std::find(alternatives.begin(), alternatives.end(), name) !=
                              alternatives.end();
}

ModelSettings resolveModelSettings(const config::ChitinConfig& c, const EnvLookup& env,
                                   const std::function<std::string(const std::string&)>& readFile) {
  ModelSettings m;
  const auto& mc = c.model();
  m.provider = mc.provider();
  m.baseUrl = mc.base_url();
  m.model = mc.model();
  m.maxTokens = mc.max_tokens() ? mc.max_tokens() : 4096;
  m.requestTimeoutSeconds = mc.request_timeout_seconds() ? mc.request_timeout_seconds() : 120;
  m.maxRetries = mc.max_retries() ? mc.max_retries() : 3;
  if (mc.alternatives_size() > 16) {
    throw ConfigError("model.alternatives: at most 16 models, got " +
                      std::to_string(mc.alternatives_size()));
  }
  auto plainName = [](const std::string& name) {
    return !name.empty() && name.size() <= 128 &&
           std::none_of(name.begin(), name.end(), [](char ch) {
             return isspace(static_cast<unsigned char>(ch)) ||
                    iscntrl(static_cast<unsigned char>(ch));
           });
  };
  for (const auto& name : mc.alternatives()) {
    if (!plainName(name)) {
      throw ConfigError("model.alternatives: expected model names (1 to 128 characters, no spaces), "
                        "got \"" + name + "\"");
    }
    m.alternatives.push_back(name);
  }
  m.embeddingModel = mc.embedding_model();
  if (!m.embeddingModel.empty() && !plainName(m.embeddingModel)) {
    throw ConfigError("model.embedding_model: expected a model name (1 to 128 characters, no "
                      "spaces), got \"" + m.embeddingModel + "\"");
  }
  std::string keyFile = mc.api_key_file();

  if (auto p = env("CHITIN_MODEL_PROVIDER")) {
    if (*p == "openai")
      m.provider = config::ModelConfig::OPENAI;
    else if (*p == "anthropic")
      m.provider = config::ModelConfig::ANTHROPIC;
    else if (p->empty() || *p == "none")
      m.provider = config::ModelConfig::PROVIDER_UNSPECIFIED;
    else
      throw ConfigError("CHITIN_MODEL_PROVIDER: expected \"openai\" or \"anthropic\", got \"" + *p +
                        "\"");
  }
  if (auto v = env("CHITIN_MODEL_BASE_URL")) m.baseUrl = *v;
  if (auto v = env("CHITIN_MODEL")) m.model = *v;
  if (auto v = env("CHITIN_MODEL_API_KEY_FILE")) keyFile = *v;

  if (auto v = env("CHITIN_MODEL_API_KEY")) {
    m.apiKey = *v;
  } else if (!keyFile.empty()) {
    try {
      m.apiKey = readFile(keyFile);
    } catch (const std::exception& e) {
      throw ConfigError("model API key file " + keyFile + ": " + e.what());
    }
    while (!m.apiKey.empty() && isspace(static_cast<unsigned char>(m.apiKey.back())))
      m.apiKey.pop_back();
  }

  if (m.baseUrl.empty()) {
    if (m.provider == config::ModelConfig::OPENAI) m.baseUrl = "https://api.openai.com/v1";
    if (m.provider == config::ModelConfig::ANTHROPIC) m.baseUrl = "https://api.anthropic.com";
  }
  if (!m.baseUrl.empty() && m.baseUrl.rfind("http://", 0) != 0 &&
      m.baseUrl.rfind("https://", 0) != 0) {
    throw ConfigError("model base URL: expected an http:// or https:// URL, got \"" + m.baseUrl +
                      "\"");
  }
  if (m.provider != config::ModelConfig::PROVIDER_UNSPECIFIED && m.model.empty()) {
    throw ConfigError("model: provider " + m.providerName() +
                      " is set but no model name (set model.model or CHITIN_MODEL)");
  }
  if (!m.embeddingModel.empty() && m.provider != config::ModelConfig::OPENAI) {
    throw ConfigError("model.embedding_model: \"" + m.embeddingModel +
                      "\" needs provider OPENAI (an OpenAI-compatible /embeddings endpoint); "
                      "provider " + m.providerName() + " has none");
  }
  for (char ch : m.apiKey) {
    if (ch == '\n' || ch == '\r' || ch == '\0') {
      throw ConfigError("model API key: contains a line break or NUL byte");
    }
  }
  return m;
}

}  // namespace chitin
