#include "coffre/http/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <new>

namespace coffre::http {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2: ECDHE key exchange and AEAD ciphers only (TLS 1.3's suites are all of that kind).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
constexpr const char* kTls13Suites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

std::string OpenSslReason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown error";
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> LoadTlsContext(const std::string& cert_chain_file,
                                                     const std::string& private_key_file) {
  ERR_clear_error();
  std::shared_ptr<ssl::context> context;
  try {
    // Throws only when OpenSSL cannot allocate the context.
    context = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("TLS context: ") + e.what());
  }
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1 || SSL_CTX_set_ciphersuites(native, kTls13Suites) != 1) {
    return Status::Internal("TLS context: " + OpenSslReason());
  }
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);

  boost::system::error_code ec;
  context->use_certificate_chain_file(cert_chain_file, ec);
  if (ec) {
    ERR_clear_error();
    return Status::InvalidArgument("tls_cert_file " + cert_chain_file + ": cannot load a PEM certificate chain (" +
                                   ec.message() + ")");
  }
  context->use_private_key_file(private_key_file, ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    return Status::InvalidArgument("tls_key_file " + private_key_file + " does not match the certificate in " +
                                   cert_chain_file);
  }
  if (ec) {
    ERR_clear_error();
    // The message never quotes the file's content: it is a private key.
    return Status::InvalidArgument("tls_key_file " + private_key_file + ": cannot load a PEM private key (" +
                                   ec.message() + ")");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("tls_key_file " + private_key_file + " does not match the certificate in " +
                                   cert_chain_file);
  }
  return context;
}

}  // namespace coffre::http
