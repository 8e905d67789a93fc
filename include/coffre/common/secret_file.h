#pragma once

// Secrets that reach the process in files (the root key, the upstream store's secret key): a file
// is accepted only if it is private to the user running coffre, so that a mistaken chmod or a
// copy into a shared directory stops the daemon instead of leaking the secret.

#include <cstddef>
#include <string>
#include <string_view>

#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre {

// The whole content of `path`, checked on the opened descriptor: a regular file of mode 0600 or
// 0400 owned by the effective user (PermissionDenied otherwise, naming the path, the mode or the
// owner), of at most `max_size` bytes (InvalidArgument beyond). `what` names the file in messages,
// e.g. "root key file". The content is never part of a message.
Result<SecretBytes> ReadPrivateFile(const std::string& path, std::string_view what, size_t max_size);

}  // namespace coffre
