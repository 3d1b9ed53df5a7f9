// SPDX-License-Identifier: Apache-2.0
// fdatasync on libuv's thread pool (see pool-sync.h).
// Runs in: supervisor

#include "pool-sync.h"

#include <unistd.h>

#include <memory>

namespace chitin {

namespace {

struct SyncRequest {
  uv_fs_t fs;
  int fd;
  std::function<void(int error)> synced;
};

}  // namespace

int fdatasyncOnPool(uv_loop_t* loop, int fd, std::function<void(int error)> synced) {
  auto request = std::make_unique<SyncRequest>();
  request->fd = fd;
  request->synced = std::move(synced);
  request->fs.data = request.get();
  int rc = uv_fs_fdatasync(loop, &request->fs, fd, [](uv_fs_t* fs) {
    std::unique_ptr<SyncRequest> done(static_cast<SyncRequest*>(fs->data));
    int error = fs->result < 0 ? static_cast<int>(-fs->result) : 0;
    uv_fs_req_cleanup(fs);
    close(done->fd);
    done->synced(error);
  });
  if (rc != 0) {
    close(fd);
    return rc;
  }
  request.release();  // the callback owns it now
  return 0;
}

}  // namespace chitin
