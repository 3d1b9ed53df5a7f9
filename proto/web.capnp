# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> web tool workers (chitin-worker-web-fetch: one process per web_fetch
# call, in sandbox-profiles/web-fetch.textproto; chitin-worker-web-search: one per web_search
# call, in web-search.textproto).
#
# The supervisor trusts nothing the worker returns beyond its shape: every byte of a response
# is attacker-controlled (the page, its headers, its redirects), and so is the worker once it has
# parsed them. The worker trusts the supervisor. The worker reaches the network only through its
# egress broker socket, whose rules the supervisor replaces before each `fetch`: exactly the one
# host:port the policy allowed for that hop.

@0x883a5e01442b632e;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

struct FetchRequest {
  url @0 :Text;               # http:// or https://, already decided and granted
  markdown @1 :Bool;          # extractMode: Markdown (true) or plain text
  maxChars @2 :UInt32;        # of extracted text; the supervisor caps it again
  maxBodyBytes @3 :UInt64;    # the body is cut here (and the result says so)
  timeoutMs @4 :UInt32;       # the whole request, connect to last byte
}

struct FetchResult {
  union {
    page @0 :Page;
    redirect @1 :Text;        # the Location, made absolute against `url`; not followed
    failed @2 :Text;          # transport failure, timeout, refused by the broker...
  }
  status @3 :UInt16;          # HTTP status (0 when there was none)

  struct Page {
    contentType @0 :Text;     # media type as sent, lower-cased, without parameters
    charset @1 :Text;         # what the text was decoded from ("" for non-text)
    title @2 :Text;
    text @3 :Text;            # UTF-8: the extracted content, or a description of non-text
    bodyBytes @4 :UInt64;     # bytes received
    truncated @5 :Bool;       # the body was cut at maxBodyBytes or the text at maxChars
  }
}

const maxTitleBytes :UInt32 = 1024;
# A page's title at most; the worker cuts a longer one at a character.

const maxShortTextBytes :UInt32 = 8192;
# `redirect`, `failed`, `contentType` and `charset` each at most; the worker cuts longer ones.

const maxFetchResultBytes :UInt64 = 2097152;
# What one FetchResult may take in all (2 MiB): the page text is at most 4 bytes per character of
# the request's maxChars (at most 200,000), every other field at its bound above. The supervisor
# reads the worker's connection with this traversal limit; a worker past it is killed.

interface WebFetcher {
  fetch @0 (request :FetchRequest) -> (result :FetchResult);
  # One hop: a GET of `request.url` (redirects are returned, never followed). May be called
  # again for the next hop after the supervisor decided and granted it; calls never overlap.
}

struct SearchRequest {
  provider @0 :Text;          # "brave" | "searxng" | "duckduckgo"
  endpoint @1 :Text;          # the provider's URL (its host:port is the worker's only rule)
  apiKey @2 :Text;            # brave only; held by the supervisor, given for this call alone
  query @3 :Text;
  count @4 :UInt8;            # 1..20
  timeoutMs @5 :UInt32;
}

struct SearchHit {
  title @0 :Text;
  url @1 :Text;
  snippet @2 :Text;
}

struct SearchOutcome {
  union {
    hits @0 :List(SearchHit);
    failed @1 :Text;          # transport failure, HTTP error, an answer that does not parse
  }
}

const maxHitTextBytes :UInt32 = 4096;
# A hit's title, url and snippet each at most; the worker cuts longer ones at a character.

const maxSearchOutcomeBytes :UInt64 = 1048576;
# What one SearchOutcome may take in all (1 MiB: 20 hits with every field at its bound, or a
# failure text of maxShortTextBytes). Read with this traversal limit, like maxFetchResultBytes.

interface WebSearcher {
  search @0 (request :SearchRequest) -> (outcome :SearchOutcome);
  # One search, one request to the provider. The results are the provider's (attacker-
  # influenced) text: the supervisor caps and cleans them and taints the session.
}
