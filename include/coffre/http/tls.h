#pragma once

// TLS for the listeners: a server context built from PEM files, TLS 1.2 and 1.3 only, with
// forward-secret AEAD cipher suites. A context is immutable once built: a certificate reload
// builds a new one, which new connections use while open ones keep theirs.

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "coffre/common/status.h"

namespace coffre::http {

// Loads the certificate chain (leaf first) and its private key. InvalidArgument names the file
// and the reason: unreadable, not PEM, or a key that does not match the certificate.
Result<std::shared_ptr<boost::asio::ssl::context>> LoadTlsContext(const std::string& cert_chain_file,
                                                                  const std::string& private_key_file);

}  // namespace coffre::http
