// SPDX-License-Identifier: Apache-2.0
// web_search's providers: the request URLs and headers each documents, and answers parsed into
// title/url/snippet (non-web URLs dropped, markup stripped, the count kept).
// Runs in: tests

#include "search.h"

#include <doctest/doctest.h>

#include <stdexcept>

namespace chitin::web {

TEST_CASE("search: request URLs and headers per provider") {
  CHECK(searchRequestUrl("brave", "https://api.search.brave.com/res/v1/web/search", "a b&c", 3) ==
        "https://api.search.brave.com/res/v1/web/search?q=a%20b%26c&count=3");
  CHECK(searchRequestUrl("searxng", "https://searx.example", "x", 5) ==
        "https://searx.example/search?q=x&format=json");
  CHECK(searchRequestUrl("duckduckgo", "https://html.duckduckgo.com/html/", "\xc3\xa9", 5) ==
        "https://html.duckduckgo.com/html/?q=%C3%A9");
  CHECK(searchRequestUrl("bing", "https://x/", "q", 1) == "");
  CHECK(searchHeaders("brave", "KEY")[1] == "X-Subscription-Token: KEY");
  CHECK(urlDecode("https%3A%2F%2Fa.test%2Fx%3Fy%3D1+2%zz") == "https://a.test/x?y=1 2%zz");
}

TEST_CASE("search: Brave and SearXNG JSON answers") {
  auto brave = parseSearchAnswer("brave",
                                 R"J({"type":"search","web":{"results":[
        {"title":"One <strong>hit</strong>","url":"https://one.test/","description":"first"},
        {"title":"Bad","url":"javascript:alert(1)","description":"x"},
        {"title":"Two","url":"http://two.test/","description":"second"},
        {"title":"Three","url":"https://three.test/","description":"third"}]}})J",
                                 2);
  REQUIRE(brave.size() == 2);
  CHECK(brave[0].title == "One hit");
  CHECK(brave[0].snippet == "first");
  CHECK(brave[1].url == "http://two.test/");
  CHECK(parseSearchAnswer("brave", R"({"type":"search"})", 5).empty());
  auto searx = parseSearchAnswer(
      "searxng", R"({"query":"q","results":[{"title":"S","url":"https://s.test/","content":"c"}]})",
      5);
  REQUIRE(searx.size() == 1);
  CHECK(searx[0].snippet == "c");
  CHECK_THROWS_AS(parseSearchAnswer("searxng", "<html>", 5), std::runtime_error);
  CHECK_THROWS_AS(parseSearchAnswer("searxng", "{}", 5), std::runtime_error);
}

TEST_CASE("search: DuckDuckGo's HTML results, links out of its redirector") {
  auto hits = parseSearchAnswer("duckduckgo",
                                R"H(<html><body><div class="serp__results"><div class="results">
    <div class="result results_links web-result"><h2 class="result__title">
      <a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fdocs.test%2Fa%3Fb%3D1&amp;rut=abc">Docs <b>A</b></a></h2>
      <a class="result__snippet" href="x">The <b>first</b> snippet</a></div>
    <div class="result"><a class="result__a" href="https://direct.test/">Direct</a>
      <a class="result__snippet">second</a></div>
  </div></div></body></html>)H",
                                5);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].title == "Docs A");
  CHECK(hits[0].url == "https://docs.test/a?b=1");
  CHECK(hits[0].snippet == "The first snippet");
  CHECK(hits[1].url == "https://direct.test/");
  CHECK_THROWS_AS(parseSearchAnswer("duckduckgo", "<html><body>Please solve this</body></html>", 5),
                  std::runtime_error);
}

}  // namespace chitin::web
