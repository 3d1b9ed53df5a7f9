# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> browser worker (one per session, long-lived; headless Chromium runs
# as its child in the same sandbox, sandbox-profiles/browser.textproto).
#
# The supervisor calls `act` once per `browser` tool call, after the guard allowed it. The
# worker calls back the `NavigationGate` it was handed for every document Chromium is about to
# request (a navigation, a link clicked, a redirect, a frame), and Chromium requests only what
# the gate allowed. Trust: the supervisor trusts nothing the worker sends beyond its shape:
# every page is hostile, and a compromised renderer may control the worker's answers. Text is
# capped and tainting; files are written by the supervisor beneath the workspace, by name only.

@0xf8e2e0348742f8e8;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

struct BrowserRequest {
  # OpenClaw's `browser` tool arguments, checked by the supervisor.
  enum Action {
    navigate @0;    # url
    snapshot @1;
    click @2;       # ref
    type @3;        # ref, text
    press @4;       # key ("Enter", "Tab", "a", ...)
    screenshot @5;
    tabs @6;
    close @7;
  }
  action @0 :Action;
  url @1 :Text;
  ref @2 :UInt32;
  text @3 :Text;
  key @4 :Text;
}

struct BrowserFile {
  name @0 :Text;   # a base name the worker suggests; the supervisor sanitizes it
  data @1 :Data;
}

struct BrowserResult {
  union {
    ok @0 :Text;       # what the model reads (snapshot text, tab list, ...)
    failed @1 :Text;   # an expected failure (no such ref, navigation refused or failed)
  }
  url @2 :Text;                     # the current tab's URL after the action ("" if none)
  screenshot @3 :Data;              # PNG (screenshot only)
  downloads @4 :List(BrowserFile);  # downloads finished since the last call
}

const maxResultTextBytes :UInt32 = 1048576;
# `ok` / `failed` and `url` each at most (1 MiB; the model reads 50 KiB of it). The worker cuts
# longer text at a character and says so.

const maxScreenshotBytes :UInt32 = 16777216;
# A screenshot at most (16 MiB of PNG); a larger one fails the action instead.

const maxDownloadsPerResult :UInt32 = 16;
const maxDownloadBytesPerResult :UInt64 = 67108864;
# Downloads in one result at most (16 files, 64 MiB together; one file is at most 64 MiB): the
# worker keeps the rest for the next result.

const maxResultBytes :UInt64 = 87031808;
# What one BrowserResult may take in all (83 MiB: every field above at its bound, plus 1 MiB of
# names and framing). The supervisor reads the worker's connection with this traversal limit; a
# worker past it is a protocol breaker and is killed.

interface NavigationGate {
  decide @0 (url :Text) -> (allowed :Bool, reason :Text);
  # May Chromium request this document? `reason` says why not (shown to the model).
}

interface BrowserWorker {
  start @0 (gate :NavigationGate) -> ();
  # First call: hands the gate over; Chromium starts at the first `act`.
  act @1 (request :BrowserRequest) -> (result :BrowserResult);
  # One action at a time; a second `act` while one runs is a protocol error.
}
