# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/run, scripts/test and scripts/bench: installing what chitin needs and
# building it. Sourced, not run.

CHITIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# What building and running chitin needs from Debian bookworm.
RUN_PACKAGES=(meson ninja-build pkg-config g++ ca-certificates
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv capnproto libcapnp-dev
  libprotobuf-dev protobuf-compiler libseccomp-dev bubblewrap libspdlog-dev doctest-dev
  libcurl4-openssl-dev libxml2-dev nlohmann-json3-dev libsodium-dev libssl-dev libgit2-dev libqrencode-dev libidn2-dev libyaml-dev
  nettle-dev
  qrencode)
# What the test suites need on top: Python for the fakes (aiohttp and websockets for the chat
# platform fakes, discord.py to check the Discord one), headless Chromium and Node for the web
# chat test, clang and its libFuzzer runtime for the fuzz suite, and the real servers the
# channel platforms are tested against (tests/channels/): IRC (ngircd; InspIRCd + Atheme for
# SASL), IMAP (Dovecot), SMTP (aiosmtpd), openssl for their test certificates; zlib's header for
# the lazy-library test (common/lazy-library-test.c++ opens libz.so.1 at run time).
TEST_PACKAGES=(python3 python3-aiohttp python3-websockets python3-discord chromium
  fonts-dejavu-core clang-14 libclang-rt-14-dev zlib1g-dev
  ngircd inspircd atheme-services dovecot-imapd python3-aiosmtpd openssl)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# install_packages PKG... : apt-get as root; otherwise print the exact command and fail.
install_packages() {
  local missing
  missing=$(missing_packages "$@" | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null
  else
    echo "chitin needs these Debian packages: $missing" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get install --no-install-recommends $missing" >&2
    return 2
  fi
}

ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_packages nodejs npm
  fi
}

# configure DIR [meson options...]: set up a build directory (no compiling). `meson test` then
# builds only what the selected suites need.
configure() {
  local dir="$1"; shift
  if [ ! -f "$CHITIN_ROOT/$dir/build.ninja" ]; then
    meson setup "$CHITIN_ROOT/$dir" "$CHITIN_ROOT" "$@" >/dev/null
  fi
}

# build DIR [meson options...]: set up and compile everything.
build() {
  configure "$@"
  ninja -C "$CHITIN_ROOT/$1" >/dev/null
}

# build_runtime DIR [meson options...]: set up and compile what `chitin gateway` runs, not the
# tests: the targets meson installs (the CLI, the supervisor, every worker) and the custom
# targets built by default (the WhatsApp bridge), as meson's introspection lists them.
build_runtime() {
  configure "$@"
  local dir="$CHITIN_ROOT/$1" targets
  mapfile -t targets < <(python3 - "$dir" <<'PY'
import json, os, sys
build = sys.argv[1]
with open(os.path.join(build, "meson-info", "intro-targets.json")) as f:
    for t in json.load(f):
        if t["installed"] or (t["type"] == "custom" and t["build_by_default"]):
            for name in t["filename"]:
                print(os.path.relpath(name, build))
PY
  )
  [ "${#targets[@]}" -gt 0 ] || { echo "no runtime targets in $dir" >&2; return 1; }
  ninja -C "$dir" "${targets[@]}" >/dev/null
}

# The unprivileged user tests run workers as when the suite itself runs as root.
CHITIN_TEST_USER="${CHITIN_TEST_USER:-chitin-test}"
ensure_test_user() {
  if [ "$(id -u)" -eq 0 ] && ! id "$CHITIN_TEST_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$CHITIN_TEST_USER"
  fi
  export CHITIN_TEST_USER
}
