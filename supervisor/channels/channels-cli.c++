// SPDX-License-Identifier: Apache-2.0
// `chitin channels list | add | remove` (see channels-cli.h).
// Runs in: the invoking user's process (`chitin-supervisor`), as the owner of $CHITIN_HOME

#include "channels-cli.h"

#include <google/protobuf/text_format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "account-setup.h"
#include "channel-kinds.h"
#include "display-text.h"
#include "home.h"

namespace chitin::channels {

namespace {

using google::protobuf::TextFormat;

constexpr int EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2;

std::string accountName(const config::ChannelAccountConfig& a) {
  return a.account().empty() ? "default" : a.account();
}

// A string as protobuf text format reads it back: quotes, backslashes and controls escaped.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\%03o", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string accountBlock(const config::ChannelAccountConfig& a, const std::string& indent) {
  std::string b = indent + "account {\n" + indent + "  kind: " + quoted(a.kind()) + "\n";
  if (accountName(a) != "default") b += indent + "  account: " + quoted(a.account()) + "\n";
  if (!a.credential_file().empty())
    b += indent + "  credential_file: " + quoted(a.credential_file()) + "\n";
  std::map<std::string, std::string> options(a.options().begin(), a.options().end());
  for (const auto& [k, v] : options)
    b += indent + "  options { key: " + quoted(k) + " value: " + quoted(v) + " }\n";
  for (const auto& e : a.egress()) b += indent + "  egress: " + quoted(e) + "\n";
  if (a.disabled()) b += indent + "  disabled: true\n";
  return b + indent + "}\n";
}

// The text parsed without defaults, with where each field is.
struct Located {
  config::ChitinConfig config;
  TextFormat::ParseInfoTree tree;
};

void locate(const std::string& text, const std::string& path, Located& out) {
  parseConfig(text, path);  // every check, with file:line:column errors
  TextFormat::Parser parser;
  parser.WriteLocationsTo(&out.tree);
  if (!parser.ParseFromString(text, &out.config)) throw ConfigError(path + ": cannot parse");
}

// The byte offset of protobuf's (line, column): both from 0, a tab advancing the column to the
// next multiple of 8, as its tokenizer counts.
size_t offsetOf(const std::string& text, int line, int column) {
  size_t at = 0;
  for (int l = 0; l < line; ++l) {
    at = text.find('\n', at);
    if (at == std::string::npos) return text.size();
    ++at;
  }
  for (int c = 0; c < column && at < text.size() && text[at] != '\n'; ++at)
    c = text[at] == '\t' ? c + 8 - c % 8 : c + 1;
  return at;
}

size_t lineStart(const std::string& text, size_t at) {
  size_t nl = at == 0 ? std::string::npos : text.rfind('\n', at - 1);
  return nl == std::string::npos ? 0 : nl + 1;
}

bool blankBetween(const std::string& text, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r') return false;
  }
  return true;
}

int findAccount(const config::ChitinConfig& c, const std::string& kind,
                const std::string& account) {
  for (int i = 0; i < c.channels().account_size(); ++i) {
    const auto& a = c.channels().account(i);
    if (a.kind() == kind && accountName(a) == account) return i;
  }
  return -1;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read: " + strerror(errno));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string restartHint() {
  return "Restart the gateway to apply it (it reads chitin.conf when it starts); then see "
         "`chitin channels status`.\n";
}

struct AddArgs {
  config::ChannelAccountConfig account;
  std::string tokenFile;
  bool tokenStdin = false;
};

int usageError(std::ostream& err, const std::string& problem) {
  err << "chitin channels: " << problem << "\n";
  return EXIT_USAGE;
}

}  // namespace

std::string addAccountToConfig(const std::string& text, const std::string& path,
                               const config::ChannelAccountConfig& account) {
  Located located;
  locate(text, path, located);
  if (findAccount(located.config, account.kind(), accountName(account)) >= 0)
    throw ConfigError(path + ": " + account.kind() + "/" + accountName(account) +
                      " is configured already (`chitin channels remove` it first)");
  std::string out;
  if (located.config.has_channels()) {
    auto* field = config::ChitinConfig::descriptor()->FindFieldByName("channels");
    auto range = located.tree.GetLocationRange(field, -1);
    size_t end = offsetOf(text, range.end.line, range.end.column);
    size_t brace = end == 0 ? 0 : end - 1;
    if (brace >= text.size() || (text[brace] != '}' && text[brace] != '>'))
      throw ConfigError(path +
                        ": cannot find the end of the channels section; add this inside "
                        "it yourself:\n" +
                        accountBlock(account, "  "));
    size_t start = lineStart(text, brace);
    if (blankBetween(text, start, brace)) {
      out = text.substr(0, start) + accountBlock(account, "  ") + text.substr(start);
    } else {
      out = text.substr(0, brace) + "\n" + accountBlock(account, "  ") + text.substr(brace);
    }
  } else {
    out = text;
    if (!out.empty() && out.back() != '\n') out += "\n";
    out += "\nchannels {\n" + accountBlock(account, "  ") + "}\n";
  }
  auto check = parseConfig(out, path);  // the edit must leave a valid config with the account
  if (findAccount(check, account.kind(), accountName(account)) < 0)
    throw ConfigError(path + ": the edited config lost the account; add it yourself");
  return out;
}

std::string removeAccountFromConfig(const std::string& text, const std::string& path,
                                    const std::string& kind, const std::string& account) {
  Located located;
  locate(text, path, located);
  int index = findAccount(located.config, kind, account);
  if (index < 0)
    throw ConfigError(path + ": no channel account " + kind + "/" + account + " is configured");
  auto* channels = config::ChitinConfig::descriptor()->FindFieldByName("channels");
  auto* accounts = config::ChannelsConfig::descriptor()->FindFieldByName("account");
  auto range = located.tree.GetTreeForNested(channels, -1)->GetLocationRange(accounts, index);
  size_t from = offsetOf(text, range.start.line, range.start.column);
  size_t to = offsetOf(text, range.end.line, range.end.column);
  size_t first = lineStart(text, from);
  size_t eol = text.find('\n', to);
  if (eol == std::string::npos) eol = text.size();
  // The block's own lines go whole; a block sharing a line with something else, just itself.
  if (blankBetween(text, first, from) && blankBetween(text, to, eol)) {
    from = first;
    to = eol < text.size() ? eol + 1 : eol;
  }
  std::string out = text.substr(0, from) + text.substr(to);
  parseConfig(out, path);
  return out;
}

int channelsCommand(const std::vector<std::string>& args, ChannelsCliEnv& env, std::ostream& out,
                    std::ostream& err) {
  HomeLayout home{env.homeDir};
  std::string sub = args.empty() ? "" : args[0];
  try {
    if (sub == "list") {
      bool json = args.size() == 2 && args[1] == "--json";
      if (args.size() > 1 && !json) return usageError(err, "expected `channels list`");
      auto c = loadConfigFile(home.configPath());
      if (c.channels().account_size() == 0) {
        out << "no channel accounts configured (add one: chitin channels add KIND --token-file "
               "F)\n";
        return EXIT_OK;
      }
      for (const auto& a : c.channels().account()) {
        std::string path = a.credential_file().empty()
                               ? defaultCredentialPath(home.root, a.kind(), a.account())
                               : a.credential_file();
        bool missing = false;
        std::string problem = credentialProblem(path, geteuid(), missing);
        const KindInfo* info = kindInfo(a.kind());
        std::string credential = problem.empty() ? path + " (ok)"
                                 : missing && info && !info->credentialRequired
                                     ? "none (none needed)"
                                     : problem;
        out << a.kind() << "/" << a.account() << (a.disabled() ? "  (disabled)" : "") << "\n"
            << "  credential  " << displayLine(credential) << "\n";
        try {
          std::string reach;
          for (const auto& r : egressRules(a, c.egress()))
            reach += (reach.empty() ? "" : ", ") + r.text() + (r.privateOk ? " (private)" : "");
          out << "  may reach   " << (reach.empty() ? "nothing yet (set its server option)" : reach)
              << "\n";
        } catch (const AccountError& e) {
          out << "  may reach   nothing: " << displayLine(e.what()) << "\n";
        }
        for (const auto& [k, v] :
             std::map<std::string, std::string>(a.options().begin(), a.options().end()))
          out << "  option      " << displayLine(k) << " = " << displayLine(v) << "\n";
      }
      return EXIT_OK;
    }

    if (sub == "add" || sub == "remove") {
      if (args.size() < 2) return usageError(err, "expected `channels " + sub + " KIND [...]`");
      AddArgs a;
      a.account.set_kind(args[1]);
      a.account.set_account("default");
      for (size_t i = 2; i < args.size(); ++i) {
        const std::string& arg = args[i];
        bool more = i + 1 < args.size();
        if (arg == "--account" && more) {
          a.account.set_account(args[++i]);
        } else if (sub == "add" && arg == "--token-file" && more) {
          a.tokenFile = args[++i];
        } else if (sub == "add" && arg == "--token-stdin") {
          a.tokenStdin = true;
        } else if (sub == "add" && arg == "--option" && more) {
          std::string kv = args[++i];
          size_t eq = kv.find('=');
          if (eq == std::string::npos || eq == 0)
            return usageError(err, "--option: expected KEY=VALUE, got \"" + displayLine(kv) + "\"");
          (*a.account.mutable_options())[kv.substr(0, eq)] = kv.substr(eq + 1);
        } else if (sub == "add" && arg == "--egress" && more) {
          a.account.add_egress(args[++i]);
        } else {
          return usageError(err, sub + ": unknown argument \"" + displayLine(arg) + "\"");
        }
      }
      const KindInfo* info = kindInfo(a.account.kind());
      if (info == nullptr) {
        std::string kinds;
        for (const auto& k : channelKinds()) kinds += (kinds.empty() ? "" : ", ") + k;
        return usageError(err, "KIND: expected one of " + kinds + ", got \"" +
                                   displayLine(a.account.kind()) + "\"");
      }
      if (!plainName(a.account.account(), 32))
        return usageError(err, "--account: expected 1-32 of a-z 0-9 _ -");
      std::string credentialPath =
          defaultCredentialPath(home.root, a.account.kind(), a.account.account());

      if (sub == "remove") {
        becomeHomeOwner(home.root);
        std::string text = readFile(home.configPath());
        Located located;
        locate(text, home.configPath(), located);
        int index = findAccount(located.config, a.account.kind(), a.account.account());
        bool ownFile =
            index >= 0 && located.config.channels().account(index).credential_file().empty();
        std::string edited =
            removeAccountFromConfig(text, home.configPath(), a.account.kind(), a.account.account());
        writeFileAtomically(home.configPath(), edited, 0600);
        out << "removed " << a.account.kind() << "/" << a.account.account() << " from "
            << home.configPath() << "\n";
        if (ownFile && unlink(credentialPath.c_str()) == 0)
          out << "deleted its credential " << credentialPath << "\n";
        if (removeStateDir(home.root, a.account.kind(), a.account.account()))
          out << "deleted its state directory " << home.stateDir() << "/channels/"
              << a.account.kind() << "/" << a.account.account()
              << " (a WhatsApp link ends with it; remove the device on the phone too)\n";
        out << restartHint();
        return EXIT_OK;
      }

      // add: the token first (the invoking user may be the only one who can read its file).
      if (!a.tokenFile.empty() && a.tokenStdin)
        return usageError(err, "add: give --token-file or --token-stdin, not both");
      std::string token;
      bool haveToken = !a.tokenFile.empty() || a.tokenStdin;
      if (!a.tokenFile.empty()) {
        token = readFile(a.tokenFile);
      } else if (a.tokenStdin) {
        std::stringstream s;
        s << env.in.rdbuf();
        token = s.str();
      }
      if (!token.empty() && token.back() == '\n') token.pop_back();
      if (!token.empty() && token.back() == '\r') token.pop_back();
      if (haveToken && token.empty()) return usageError(err, "add: the token is empty");
      if (!haveToken && info->credentialRequired)
        return usageError(
            err, "add: " + a.account.kind() + " needs a token: --token-file FILE or --token-stdin");
      egressRules(a.account, config::EgressConfig());  // option values naming hosts must be usable

      becomeHomeOwner(home.root);
      // Before the gateway's first start there may be no home yet (it makes the rest of it).
      if (mkdir(home.root.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error(home.root + ": cannot create: " + strerror(errno));
      loadConfigFile(home.configPath());  // writes the commented example when there is none
      std::string edited =
          addAccountToConfig(readFile(home.configPath()), home.configPath(), a.account);
      if (haveToken) {
        ensurePrivateDir(home.root, {"credentials"});
        writeFileAtomically(credentialPath, token + "\n", 0600);
      }
      writeFileAtomically(home.configPath(), edited, 0600);
      out << "added " << a.account.kind() << "/" << a.account.account() << "\n";
      if (haveToken) out << "  credential  " << credentialPath << " (mode 600)\n";
      out << "  config      " << home.configPath() << "\n"
          << restartHint()
          << "Then message the account from your phone: a stranger gets a pairing code, and "
             "`chitin pairing approve CODE` lets you in.\n";
      return EXIT_OK;
    }
  } catch (const ConfigError& e) {
    err << "chitin channels: " << e.what() << "\n";
    return EXIT_USAGE;
  } catch (const AccountError& e) {
    err << "chitin channels: " << e.what() << "\n";
    return EXIT_USAGE;
  } catch (const std::exception& e) {
    err << "chitin channels: " << e.what() << "\n";
    return EXIT_FAILED;
  }
  return usageError(err,
                    "expected `channels list`, `channels add KIND [--account ID] (--token-file F "
                    "| --token-stdin) [--option KEY=VALUE]... [--egress HOST:PORT]...` or "
                    "`channels remove KIND [--account ID]` (status and login go through the "
                    "gateway)");
}

}  // namespace chitin::channels
