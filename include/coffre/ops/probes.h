#pragma once

// Checks of the host that readiness and metrics report. Each does blocking system calls: call
// them from a worker thread, never from a network thread.

#include <cstdint>
#include <string>

#include "coffre/common/status.h"

namespace coffre::ops {

// Creates, writes and removes a small file in `dir`: fails on a read-only file system, a full
// disk, or a directory the service may not write.
Status ProbeWritable(const std::string& dir);

// Bytes available to this (unprivileged) process on the file system holding `path`.
Result<uint64_t> FreeBytes(const std::string& path);

}  // namespace coffre::ops
