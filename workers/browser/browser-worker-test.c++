// SPDX-License-Identifier: Apache-2.0
// Unit tests of the browser worker's pure parts: the DevTools message framing, the snapshot
// text and Chromium's command line.
// Runs in: tests

#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cdp.h"
#include "chromium.h"
#include "snapshot.h"

using namespace chitin::browser;
using nlohmann::json;

TEST_CASE("cdp framing: messages split on NUL across reads; an oversized one throws") {
  MessageSplitter splitter(16);
  std::vector<std::string> got;
  auto sink = [&](std::string m) { got.push_back(m); };
  std::string a = std::string("{\"a\":1}") + '\0' + "{\"b\"";
  splitter.feed(a.data(), a.size(), sink);
  std::string b = std::string(":2}") + '\0';
  splitter.feed(b.data(), b.size(), sink);
  CHECK(got == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
  std::string big(17, 'x');
  CHECK_THROWS(splitter.feed(big.data(), big.size(), sink));
}

TEST_CASE("snapshot: elements get refs, text runs and unnamed containers do not") {
  json nodes = json::parse(R"([
    {"nodeId":"1","role":{"value":"RootWebArea"},"name":{"value":"Login"},"childIds":["2"],"backendDOMNodeId":1},
    {"nodeId":"2","parentId":"1","role":{"value":"generic"},"childIds":["3","4","5"],"backendDOMNodeId":2},
    {"nodeId":"3","parentId":"2","role":{"value":"StaticText"},"name":{"value":"Hello\nthere"},"childIds":[]},
    {"nodeId":"4","parentId":"2","role":{"value":"button"},"name":{"value":"Sign \"in\""},"backendDOMNodeId":7},
    {"nodeId":"5","parentId":"2","ignored":true,"childIds":["6"]},
    {"nodeId":"6","parentId":"5","role":{"value":"textbox"},"name":{"value":"User"},"value":{"value":"bob"},"backendDOMNodeId":9}
  ])");
  auto s = formatSnapshot(nodes);
  CHECK(s.text ==
        "[1] RootWebArea \"Login\"\n"
        "  text \"Hello there\"\n"
        "  [2] button \"Sign \\\"in\\\"\"\n"
        "  [3] textbox \"User\" value=\"bob\"\n");
  CHECK(s.refs.at(2) == 7);
  CHECK(s.refs.at(3) == 9);
}

TEST_CASE("snapshot: hostile trees (cycles, depth, junk) are bounded") {
  json nodes = json::array();
  for (int i = 0; i < 5000; ++i) {
    json n = {{"nodeId", std::to_string(i)},
              {"role", {{"value", "link"}}},
              {"name", {{"value", "x"}}},
              {"childIds", {std::to_string(i + 1), "0"}}};
    if (i > 0) n["parentId"] = std::to_string(i - 1);
    nodes.push_back(n);
  }
  nodes.push_back(42);
  nodes.push_back({{"nodeId", 5}});
  auto s = formatSnapshot(nodes);
  CHECK(std::count(s.text.begin(), s.text.end(), '\n') <= 300);
  CHECK(formatSnapshot(json::object()).text.empty());
}

TEST_CASE("chromium argv: its own traffic only through the forwarder, nothing resolved locally") {
  ChromiumSettings settings;
  settings.proxyPort = 4242;
  auto argv = chromiumArgv(settings);
  auto has = [&](const std::string& flag) {
    return std::find(argv.begin(), argv.end(), flag) != argv.end();
  };
  CHECK(has("--proxy-server=socks5://127.0.0.1:4242"));
  CHECK(has("--proxy-bypass-list=<-loopback>"));
  CHECK(has("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"));
  CHECK(has("--disable-quic"));
  CHECK(has("--force-webrtc-ip-handling-policy=disable_non_proxied_udp"));
  CHECK(has("--remote-debugging-pipe"));
  CHECK(has("--user-data-dir=/profile"));
  settings.proxyPort = 0;
  CHECK_THROWS(chromiumArgv(settings));
}
