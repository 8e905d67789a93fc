#include "sigv4_signer.h"

#include <chrono>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/sigv4/sigv4.h"

namespace coffre::load {

Signer::Signer(std::string access_key_id, std::string_view secret_access_key, std::string region)
    : access_key_id_(std::move(access_key_id)), secret_(AsBytes(secret_access_key)), region_(std::move(region)) {}

std::vector<std::pair<std::string, std::string>> Signer::Sign(std::string_view method, std::string_view target,
                                                              std::string_view host) const {
  const std::string amz_date = FormatAmzDate(std::chrono::system_clock::now());
  std::vector<std::pair<std::string, std::string>> headers = {
      {"x-amz-content-sha256", std::string(sigv4::kUnsignedPayload)}, {"x-amz-date", amz_date}};
  const sigv4::HeaderFields fields = {
      {"host", host}, {headers[0].first, headers[0].second}, {headers[1].first, headers[1].second}};
  static const std::vector<std::string> kSignedHeaders = {"host", "x-amz-content-sha256", "x-amz-date"};
  // The target's path is already encoded as S3 wants it, and the generator sends queries in
  // canonical order, so both are signed as they are sent.
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  const std::string authorization =
      sigv4::Authorization({.access_key_id = access_key_id_, .secret_access_key = secret_, .region = region_}, amz_date,
                           {.method = method,
                            .canonical_uri = path,
                            .canonical_query = query,
                            .headers = fields,
                            .signed_headers = kSignedHeaders,
                            .payload_hash = sigv4::kUnsignedPayload});
  headers.emplace_back("Authorization", authorization);
  return headers;
}

}  // namespace coffre::load
