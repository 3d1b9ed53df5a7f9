// SPDX-License-Identifier: Apache-2.0
// fdatasync off the loop thread: on libuv's thread pool, reported back on the loop.
// Runs in: supervisor
//
// For the appends the loop writes itself (transcripts, the channels' seen-stores): the write is
// quick, the sync is the disk's time, and the loop goes on meanwhile.

#pragma once

#include <uv.h>

#include <functional>

namespace chitin {

// Takes `fd` (closed once synced), syncs it on `loop`'s pool, then calls `synced(0 or an errno)`
// on the loop's thread. Returns 0, or the libuv error that kept it from being queued (`fd` is
// closed then and `synced` is never called).
int fdatasyncOnPool(uv_loop_t* loop, int fd, std::function<void(int error)> synced);

}  // namespace chitin
