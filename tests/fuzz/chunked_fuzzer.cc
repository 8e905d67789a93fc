// Fuzzes the aws-chunked decoder (s3::ChunkedDecoder): chunk framing, chunk signatures, trailers
// and trailer signatures, in each streaming mode, with the stream cut at fuzzer-chosen points.
//
// Input: byte 0 picks the mode (signed / signed with trailer, as in the AWS examples, or unsigned
// with trailer, where no signature stands in the fuzzer's way), byte 1 picks the piece size the
// stream is fed in, byte 2 whether x-amz-decoded-content-length is sent; the rest is the body.
// Properties: decoding in one piece and in small pieces agree (error or not; on success the same
// payload and trailers); decoding the small pieces in place gives the same bytes as copying them
// out, up to the same error if any; the decoded payload is never longer than the body; after an error the
// decoder stays failed.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/s3/chunked.h"
#include "coffre/s3/sigv4.h"

namespace {

using coffre::s3::AuthResult;
using coffre::s3::PayloadMode;

constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

AuthResult ExampleAuth(PayloadMode mode, std::string_view seed) {
  AuthResult auth;
  auth.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  auth.payload_mode = mode;
  auth.amz_date = "20130524T000000Z";
  auth.scope = "20130524/us-east-1/s3/aws4_request";
  auth.seed_signature = std::string(seed);
  auth.signing_key =
      coffre::s3::DeriveSigningKey(coffre::SecretBytes(coffre::AsBytes(kSecret)), "20130524", "us-east-1", "s3");
  return auth;
}

struct Outcome {
  bool failed = false;
  bool done = false;
  coffre::Bytes data;
  std::vector<std::pair<std::string, std::string>> trailers;
};

// `in_place`: through FeedInPlace, each piece copied into a buffer of its own first.
Outcome Decode(const AuthResult& auth, coffre::ByteView body, size_t piece, std::optional<uint64_t> length,
               bool in_place = false) {
  coffre::s3::ChunkedDecoder decoder(auth, {"x-amz-checksum-crc32c", "x-amz-checksum-crc32"}, length);
  Outcome out;
  for (size_t at = 0; at < body.size(); at += piece) {
    const size_t n = std::min(piece, body.size() - at);
    std::optional<coffre::s3::Error> error;
    if (in_place) {
      coffre::Bytes buffer(body.begin() + static_cast<std::ptrdiff_t>(at),
                           body.begin() + static_cast<std::ptrdiff_t>(at + n));
      size_t payload = 0;
      error = decoder.FeedInPlace(buffer, payload);
      if (payload > n) {
        std::abort();
      }
      out.data.insert(out.data.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(payload));
    } else {
      error = decoder.Feed(body.subspan(at, n), out.data);
    }
    if (error) {
      out.failed = true;
      // Errors are sticky.
      coffre::Bytes more;
      if (!decoder.Feed(coffre::AsBytes("0\r\n\r\n"), more) || !more.empty() || !decoder.Finish()) {
        std::abort();
      }
      return out;
    }
  }
  if (decoder.Finish()) {
    out.failed = true;
    return out;
  }
  out.done = decoder.done();
  out.trailers = decoder.trailers();
  if (decoder.decoded_bytes() != out.data.size()) {
    std::abort();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const AuthResult signed_auth =
      ExampleAuth(PayloadMode::kStreamingSigned, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  static const AuthResult trailer_auth = ExampleAuth(
      PayloadMode::kStreamingSignedTrailer, "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
  static const AuthResult unsigned_auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  if (size < 3) {
    return 0;
  }
  const AuthResult& auth = data[0] % 3 == 0 ? signed_auth : data[0] % 3 == 1 ? trailer_auth : unsigned_auth;
  const size_t piece = 1 + data[1] % 64;
  const coffre::ByteView body(data + 3, size - 3);
  std::optional<uint64_t> length;
  if (data[2] % 2 == 1) {
    length = data[2] / 2;  // a small declared length (0..127)
  }
  const Outcome whole = Decode(auth, body, body.size() == 0 ? 1 : body.size(), length);
  const Outcome pieces = Decode(auth, body, piece, length);
  const Outcome in_place = Decode(auth, body, piece, length, true);
  if (in_place.failed != pieces.failed || in_place.data != pieces.data || in_place.trailers != pieces.trailers ||
      in_place.done != pieces.done) {
    std::abort();
  }
  if (whole.failed != pieces.failed) {
    std::abort();
  }
  if (!whole.failed && (whole.data != pieces.data || whole.trailers != pieces.trailers || !whole.done)) {
    std::abort();
  }
  if (whole.data.size() > body.size() || pieces.data.size() > body.size()) {
    std::abort();
  }
  return 0;
}
