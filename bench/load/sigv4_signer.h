#pragma once

// Signs load-generator requests with SigV4 (Authorization header, UNSIGNED-PAYLOAD) through the
// project's own s3 signing helpers, so the daemon verifies them exactly as an SDK's.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/secret.h"

namespace coffre::load {

class Signer {
 public:
  Signer(std::string access_key_id, std::string_view secret_access_key, std::string region);

  // The headers to send (x-amz-date, x-amz-content-sha256, Authorization) for a request with
  // this method, target (path and query, already URI-encoded) and Host header value.
  std::vector<std::pair<std::string, std::string>> Sign(std::string_view method, std::string_view target,
                                                        std::string_view host) const;

 private:
  std::string access_key_id_;
  SecretBytes secret_;
  std::string region_;
};

}  // namespace coffre::load
