// SPDX-License-Identifier: Apache-2.0
// The exec command's environment (see exec-env.h).
// Runs in: worker (sandboxed)
//
// A later command the owner approves ("git status", "python3 x.py") must mean what it says, not
// what files an earlier command wrote without asking made of it:
// - HOME is a fresh tmpfs per call, never the workspace: ~/.bashrc, ~/.gitconfig, ~/.magic,
//   ~/.local/lib/python3*/site-packages/*.pth and every other dotfile start empty. (bash -c
//   reads no startup file unless BASH_ENV or ENV is set, and neither is.)
// - git reads no system or global configuration, and the repository's own configuration
//   (.git/config, which a command can write) is overridden, through GIT_CONFIG_COUNT (command
//   line scope, which wins over every file), for each key that makes git run a program, fetch,
//   or trust a planted bare repository.
//
// What this does NOT cover (git 2.39 has no setting that switches them off; the keys are
// named by the repository itself, so they cannot be overridden one by one). Writes to `.git/`
// and `.gitattributes` must therefore be decided by policy:
// - diff.external (run by `git diff`, `git log -p`, `git show`: an empty override makes every
//   such diff fail rather than fall back to the internal one), diff.<driver>.command and
//   diff.<driver>.textconv, filter.<driver>.clean/smudge/process (`git status`, `git add`,
//   `git checkout` run them for paths .gitattributes or .git/info/attributes assign), and
//   merge.<driver>.driver;
// - submodule.<name>.update = !command (`git submodule update`);
// - alias.<name> = !command (only when that alias is typed: `git st`);
// - tar.<format>.command (`git archive`), difftool/mergetool.<tool>.cmd, man/web browsers
//   (only when those commands are run);
// - include.path / includeIf (pull any of the above in from another file of the workspace).
// Everything transport-related (remote.<name>.uploadpack/receivepack, core.gitProxy,
// core.alternateRefsCommand, url.<base>.insteadOf to ext::) is inert: no protocol is allowed.

#include "exec-env.h"

#include <kj/vector.h>

namespace chitin {

namespace {

struct GitSetting {
  const char* key;
  const char* value;
};

constexpr GitSetting GIT_OVERRIDES[] = {
    {"core.fsmonitor", "false"},      // a hook command run by `git status`
    {"core.hooksPath", "/dev/null"},  // no hook of .git/hooks runs (none exist there)
    {"core.pager", "cat"},            // stdout is a pipe (no pager runs anyway)
    {"core.editor", "false"},         // a commit needing an editor fails instead
    {"sequence.editor", "false"},
    {"core.sshCommand", "false"},
    {"core.askPass", ""},       // empty: no askpass program
    {"credential.helper", ""},  // empty resets the list of helpers
    {"interactive.diffFilter", "cat"},
    {"gpg.program", "false"},  // signing or verifying would run it
    {"gpg.openpgp.program", "false"},
    {"gpg.x509.program", "false"},
    {"gpg.ssh.program", "false"},
    {"gpg.ssh.defaultKeyCommand", "false"},
    {"commit.gpgSign", "false"},
    {"tag.gpgSign", "false"},
    {"push.gpgSign", "false"},
    {"log.showSignature", "false"},
    // No transport at all (the sandbox has no network; the local ones run programs the
    // repository names: remote.<name>.uploadpack, ext::).
    {"protocol.allow", "never"},
    {"protocol.file.allow", "never"},
    {"protocol.ext.allow", "never"},
    {"protocol.ssh.allow", "never"},
    {"protocol.git.allow", "never"},
    {"protocol.http.allow", "never"},
    {"protocol.https.allow", "never"},
    // A bare repository planted in the workspace is used only when named (--git-dir).
    {"safe.bareRepository", "explicit"},
};

}  // namespace

kj::Array<kj::String> execEnvironment(kj::StringPtr home) {
  kj::Vector<kj::String> env;
  env.add(kj::str("PATH=/usr/local/bin:/usr/bin:/bin"));
  env.add(kj::str("HOME=", home));
  env.add(kj::str("LANG=C.UTF-8"));
  env.add(kj::str("TERM=dumb"));
  env.add(kj::str("GIT_CONFIG_NOSYSTEM=1"));
  env.add(kj::str("GIT_CONFIG_GLOBAL=/dev/null"));
  env.add(kj::str("GIT_ATTR_NOSYSTEM=1"));
  env.add(kj::str("GIT_CONFIG_COUNT=", kj::size(GIT_OVERRIDES)));
  for (size_t i = 0; i < kj::size(GIT_OVERRIDES); i++) {
    env.add(kj::str("GIT_CONFIG_KEY_", i, "=", GIT_OVERRIDES[i].key));
    env.add(kj::str("GIT_CONFIG_VALUE_", i, "=", GIT_OVERRIDES[i].value));
  }
  return env.releaseAsArray();
}

}  // namespace chitin
