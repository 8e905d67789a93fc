#pragma once

// Incremental decoder of the aws-chunked content encoding used by streaming SigV4 uploads:
//   hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//   [trailer-name:value\r\n ...][x-amz-trailer-signature:sig\r\n]\r\n
// Every chunk signature is verified against the chain started by the request's seed signature;
// trailer headers (x-amz-checksum-*) are collected for the caller to verify against the payload.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/s3/error.h"
#include "coffre/s3/sigv4.h"

namespace coffre::s3 {

class ChunkedDecoder {
 public:
  // `auth` must outlive the decoder; its payload_mode must be a streaming mode. `declared_trailers`
  // are the names from x-amz-trailer (lower-case); a trailer not declared there is rejected.
  // `decoded_length` is x-amz-decoded-content-length when the client sent it.
  ChunkedDecoder(const AuthResult& auth, std::vector<std::string> declared_trailers,
                 std::optional<uint64_t> decoded_length);

  // Consumes `in` (any split of the encoded stream); appends decoded payload bytes to `out`.
  // Chunk data is passed on as it arrives, and a signed chunk's signature is checked when its
  // last byte has passed: so that a request holds no more than its read buffer, whatever the
  // chunk size. Callers must therefore keep nothing (commit no object) unless Finish() succeeds,
  // as they do with a signed payload hash, which is also known only at the end.
  // Errors: kSignatureDoesNotMatch (bad chunk or trailer signature), kIncompleteBody /
  // kInvalidRequest (malformed framing), kInvalidChunkSizeError (a non-final signed chunk under
  // 8 KiB, or one over 1 MiB), kIncompleteBody when the decoded length differs from
  // x-amz-decoded-content-length. After an error, the decoder stays failed.
  std::optional<Error> Feed(ByteView in, Bytes& out);

  // As Feed, except that the decoded payload bytes are written over `buffer` itself, from its
  // start, and `payload_size` receives their count: the payload is a subsequence of the encoded
  // stream, so a request needs no second buffer to strip the framing into.
  std::optional<Error> FeedInPlace(std::span<uint8_t> buffer, size_t& payload_size);

  // Call at end of body: error if the final chunk / trailer section was not complete.
  std::optional<Error> Finish();

  bool done() const;
  uint64_t decoded_bytes() const;
  // Trailer fields received (names lower-case), once done().
  const std::vector<std::pair<std::string, std::string>>& trailers() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace coffre::s3
