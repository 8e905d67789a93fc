#include "coffre/s3/chunked.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"

namespace coffre::s3 {
namespace {

// A chunk header is "hex;chunk-signature=<64 hex>" (about 100 bytes); a trailer line is one header
// field. Anything longer than this is not a client we know but an attempt to make us buffer.
constexpr size_t kMaxLineLength = 4096;
// What SDKs send: 64 KiB (minio-go, the AWS Go SDK) to 128 KiB (AWS Java SDK), at most 1 MiB
// (botocore's aws-chunked bodies). A larger signed chunk gets S3's InvalidChunkSizeError.
constexpr uint64_t kMaxSignedChunkSize = uint64_t{1} << 20;
// Unsigned chunks stream through; the bound is S3's largest single PUT and only guards arithmetic.
constexpr uint64_t kMaxUnsignedChunkSize = uint64_t{5} << 30;
// S3: "Only the last chunk is allowed to have a size less than 8192 bytes".
constexpr uint64_t kMinNonFinalChunkSize = 8192;
constexpr std::string_view kChunkSignaturePrefix = ";chunk-signature=";
constexpr std::string_view kTrailerSignatureName = "x-amz-trailer-signature";

bool IsSignatureHex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return HexDigitValue(c) >= 0; });
}

bool SignaturesEqual(std::string_view expected_lower_hex, std::string_view provided) {
  const std::string lowered = ToLower(provided);
  return ConstantTimeEquals(AsBytes(expected_lower_hex), AsBytes(lowered));
}

}  // namespace

struct ChunkedDecoder::State {
  enum class Phase { kChunkHeader, kChunkData, kChunkDataEnd, kTrailer, kDone, kFailed };

  const AuthResult* auth = nullptr;
  std::vector<std::string> declared_trailers;
  std::optional<uint64_t> decoded_length;
  bool signed_chunks = false;
  bool has_trailer = false;
  bool signed_trailer = false;

  Phase phase = Phase::kChunkHeader;
  Error error;             // valid when phase == kFailed
  std::string line;        // chunk header or trailer line being accumulated (CRLF excluded)
  uint64_t remaining = 0;  // bytes of the current chunk's data still to come
  size_t crlf_seen = 0;    // bytes of the CRLF after chunk data seen so far
  std::string chunk_signature;
  std::string previous_signature;
  crypto::Sha256 hasher;  // signed modes: the current chunk's data, hashed as it passes through
  bool previous_chunk_small = false;
  uint64_t decoded = 0;
  bool trailer_separator_skipped = false;
  bool trailer_signature_verified = false;
  std::vector<std::pair<std::string, std::string>> trailers;

  std::optional<Error> Fail(ErrorCode code, std::string message) {
    phase = Phase::kFailed;
    error = Error(code, std::move(message));
    return error;
  }

  // Verifies the chunk whose data hashed into `hasher` and advances the chain.
  std::optional<Error> VerifyChunk() {
    const std::string expected = ChunkSignature(*auth, previous_signature, HexEncode(hasher.Final()));
    if (!SignaturesEqual(expected, chunk_signature)) {
      return Fail(ErrorCode::kSignatureDoesNotMatch, "The chunk signature does not match the data sent.");
    }
    previous_signature = expected;
    return std::nullopt;
  }

  std::optional<Error> OnChunkHeader(std::string_view header) {
    uint64_t size = 0;
    size_t pos = 0;
    const uint64_t max_size = signed_chunks ? kMaxSignedChunkSize : kMaxUnsignedChunkSize;
    for (; pos < header.size(); ++pos) {
      const int digit = HexDigitValue(header[pos]);
      if (digit < 0) {
        break;
      }
      size = size * 16 + static_cast<uint64_t>(digit);
      if (size > max_size) {
        return Fail(signed_chunks ? ErrorCode::kInvalidChunkSizeError : ErrorCode::kInvalidRequest,
                    "aws-chunked chunk size exceeds the maximum of " + std::to_string(max_size) + " bytes.");
      }
    }
    if (pos == 0) {
      return Fail(ErrorCode::kInvalidRequest, "Malformed aws-chunked chunk header: invalid chunk size.");
    }
    const std::string_view extension = header.substr(pos);
    if (signed_chunks) {
      if (!extension.starts_with(kChunkSignaturePrefix)) {
        return Fail(ErrorCode::kSignatureDoesNotMatch, "An aws-chunked chunk header lacks its chunk-signature.");
      }
      const std::string_view signature = extension.substr(kChunkSignaturePrefix.size());
      if (!IsSignatureHex(signature)) {
        return Fail(ErrorCode::kInvalidRequest, "Malformed aws-chunked chunk header: invalid chunk-signature.");
      }
      if (size > 0 && previous_chunk_small) {
        return Fail(ErrorCode::kInvalidChunkSizeError, {});
      }
      chunk_signature = std::string(signature);
    } else if (!extension.empty() && extension.front() != ';') {
      return Fail(ErrorCode::kInvalidRequest, "Malformed aws-chunked chunk header: invalid chunk size.");
    }
    previous_chunk_small = size < kMinNonFinalChunkSize;
    if (decoded_length && size > *decoded_length - decoded) {
      return Fail(ErrorCode::kIncompleteBody, "The aws-chunked body is longer than x-amz-decoded-content-length.");
    }
    hasher = crypto::Sha256();
    if (size == 0) {
      if (signed_chunks) {
        if (std::optional<Error> e = VerifyChunk()) {
          return e;
        }
      }
      if (decoded_length && decoded != *decoded_length) {
        return Fail(ErrorCode::kIncompleteBody, "The aws-chunked body is shorter than x-amz-decoded-content-length.");
      }
      phase = Phase::kTrailer;
      return std::nullopt;
    }
    remaining = size;
    phase = Phase::kChunkData;
    return std::nullopt;
  }

  std::optional<Error> EndTrailers() {
    if (signed_trailer && !trailer_signature_verified) {
      return Fail(ErrorCode::kSignatureDoesNotMatch, "The trailer section lacks x-amz-trailer-signature.");
    }
    phase = Phase::kDone;
    return std::nullopt;
  }

  std::optional<Error> OnTrailerLine(std::string_view text) {
    if (text.empty()) {
      if (!has_trailer) {
        phase = Phase::kDone;
        return std::nullopt;
      }
      // Some clients put the CRLF that ends the final chunk's (empty) data before the trailers too.
      if (trailers.empty() && !trailer_signature_verified && !trailer_separator_skipped &&
          (signed_trailer || !declared_trailers.empty())) {
        trailer_separator_skipped = true;
        return std::nullopt;
      }
      return EndTrailers();
    }
    if (!has_trailer) {
      return Fail(ErrorCode::kInvalidRequest, "Unexpected data after the final aws-chunked chunk.");
    }
    if (trailer_signature_verified) {
      return Fail(ErrorCode::kInvalidRequest, "Trailer fields after x-amz-trailer-signature are not allowed.");
    }
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      return Fail(ErrorCode::kInvalidRequest, "Malformed trailer field in aws-chunked body.");
    }
    std::string name = ToLower(TrimWhitespace(text.substr(0, colon)));
    const std::string_view value = TrimWhitespace(text.substr(colon + 1));
    if (name == kTrailerSignatureName) {
      if (!signed_trailer) {
        return Fail(ErrorCode::kInvalidRequest, "x-amz-trailer-signature sent with an unsigned trailer.");
      }
      if (!IsSignatureHex(value)) {
        return Fail(ErrorCode::kInvalidRequest, "Malformed x-amz-trailer-signature.");
      }
      std::vector<std::pair<std::string, std::string>> sorted = trailers;
      std::sort(sorted.begin(), sorted.end());
      std::string canonical;
      for (const auto& [n, v] : sorted) {
        canonical += n;
        canonical.push_back(':');
        canonical += v;
        canonical.push_back('\n');
      }
      const std::string expected =
          TrailerSignature(*auth, previous_signature, HexEncode(crypto::Sha256::Digest(AsBytes(canonical))));
      if (!SignaturesEqual(expected, value)) {
        return Fail(ErrorCode::kSignatureDoesNotMatch, "The trailer signature does not match the trailer sent.");
      }
      previous_signature = expected;
      trailer_signature_verified = true;
      return std::nullopt;
    }
    if (std::find(declared_trailers.begin(), declared_trailers.end(), name) == declared_trailers.end()) {
      return Fail(ErrorCode::kInvalidRequest, "The trailer " + name + " was not declared in x-amz-trailer.");
    }
    const bool duplicate =
        std::any_of(trailers.begin(), trailers.end(), [&](const auto& t) { return t.first == name; });
    if (duplicate) {
      return Fail(ErrorCode::kInvalidRequest, "The trailer " + name + " was sent twice.");
    }
    trailers.emplace_back(std::move(name), std::string(value));
    return std::nullopt;
  }

  // Accumulates a CRLF-terminated line; returns true in `complete` once the line is whole.
  std::optional<Error> TakeLine(ByteView in, size_t& i, bool& complete) {
    const auto* begin = in.data() + i;
    const auto* end = in.data() + in.size();
    const auto* newline = std::find(begin, end, static_cast<uint8_t>('\n'));
    line.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(newline - begin));
    if (line.size() > kMaxLineLength + 1) {  // +1: the '\r' of the CRLF
      return Fail(ErrorCode::kInvalidRequest, "aws-chunked header line too long.");
    }
    if (newline == end) {
      i = in.size();
      complete = false;
      return std::nullopt;
    }
    i += static_cast<size_t>(newline - begin) + 1;
    if (line.empty() || line.back() != '\r') {
      return Fail(ErrorCode::kInvalidRequest, "aws-chunked lines must end with CRLF.");
    }
    line.pop_back();
    if (line.find('\r') != std::string::npos) {
      return Fail(ErrorCode::kInvalidRequest, "Malformed aws-chunked line.");
    }
    complete = true;
    return std::nullopt;
  }

  // `emit(piece)` receives each run of payload bytes, a view into `in`, once it is hashed.
  template <class Emit>
  std::optional<Error> Feed(ByteView in, Emit&& emit) {
    size_t i = 0;
    while (i < in.size()) {
      switch (phase) {
        case Phase::kFailed:
          return error;
        case Phase::kDone:
          return Fail(ErrorCode::kInvalidRequest, "Unexpected data after the end of the aws-chunked body.");
        case Phase::kChunkHeader:
        case Phase::kTrailer: {
          bool complete = false;
          if (std::optional<Error> e = TakeLine(in, i, complete)) {
            return e;
          }
          if (!complete) {
            break;
          }
          const std::string text = std::move(line);
          line.clear();
          std::optional<Error> e = phase == Phase::kChunkHeader ? OnChunkHeader(text) : OnTrailerLine(text);
          if (e) {
            return e;
          }
          break;
        }
        case Phase::kChunkData: {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, in.size() - i));
          const ByteView piece = in.subspan(i, n);
          if (signed_chunks) {
            hasher.Update(piece);
          }
          emit(piece);
          decoded += n;
          remaining -= n;
          i += n;
          if (remaining == 0) {
            if (signed_chunks) {
              if (std::optional<Error> e = VerifyChunk()) {
                return e;
              }
            }
            crlf_seen = 0;
            phase = Phase::kChunkDataEnd;
          }
          break;
        }
        case Phase::kChunkDataEnd: {
          const char expected = crlf_seen == 0 ? '\r' : '\n';
          if (static_cast<char>(in[i]) != expected) {
            return Fail(ErrorCode::kInvalidRequest, "aws-chunked chunk data is not followed by CRLF.");
          }
          ++i;
          if (++crlf_seen == 2) {
            phase = Phase::kChunkHeader;
          }
          break;
        }
      }
    }
    if (phase == Phase::kFailed) {
      return error;
    }
    return std::nullopt;
  }

  std::optional<Error> Finish() {
    switch (phase) {
      case Phase::kFailed:
        return error;
      case Phase::kDone:
        return std::nullopt;
      case Phase::kTrailer: {
        // The body may end without the final empty line (or without the last line's CRLF).
        std::string text = std::move(line);
        line.clear();
        if (!text.empty() && text.back() == '\r') {
          text.pop_back();
        }
        if (!text.empty()) {
          if (text.find('\r') != std::string::npos) {
            return Fail(ErrorCode::kInvalidRequest, "Malformed aws-chunked line.");
          }
          if (std::optional<Error> e = OnTrailerLine(text)) {
            return e;
          }
        }
        if (phase == Phase::kDone) {
          return std::nullopt;
        }
        return EndTrailers();
      }
      case Phase::kChunkHeader:
      case Phase::kChunkData:
      case Phase::kChunkDataEnd:
        break;
    }
    return Fail(ErrorCode::kIncompleteBody, "The aws-chunked body ended before its final chunk.");
  }
};

ChunkedDecoder::ChunkedDecoder(const AuthResult& auth, std::vector<std::string> declared_trailers,
                               std::optional<uint64_t> decoded_length)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.auth = &auth;
  s.declared_trailers = std::move(declared_trailers);
  for (std::string& name : s.declared_trailers) {
    name = ToLower(TrimWhitespace(name));
  }
  s.decoded_length = decoded_length;
  s.previous_signature = auth.seed_signature;
  switch (auth.payload_mode) {
    case PayloadMode::kStreamingSigned:
      s.signed_chunks = true;
      break;
    case PayloadMode::kStreamingSignedTrailer:
      s.signed_chunks = true;
      s.has_trailer = true;
      s.signed_trailer = true;
      break;
    case PayloadMode::kStreamingUnsignedTrailer:
      s.has_trailer = true;
      break;
    case PayloadMode::kSignedHash:
    case PayloadMode::kUnsigned:
      s.phase = State::Phase::kFailed;
      s.error = Error(ErrorCode::kInternalError, "aws-chunked decoder used with a non-streaming payload mode.");
      break;
  }
}

std::optional<Error> ChunkedDecoder::Feed(ByteView in, Bytes& out) {
  return state_->Feed(in, [&out](ByteView piece) { out.insert(out.end(), piece.begin(), piece.end()); });
}

std::optional<Error> ChunkedDecoder::FeedInPlace(std::span<uint8_t> buffer, size_t& payload_size) {
  payload_size = 0;
  // Each piece lies at or after the write position: the framing before it was already consumed.
  return state_->Feed(buffer, [&](ByteView piece) {
    std::memmove(buffer.data() + payload_size, piece.data(), piece.size());
    payload_size += piece.size();
  });
}

std::optional<Error> ChunkedDecoder::Finish() { return state_->Finish(); }

bool ChunkedDecoder::done() const { return state_->phase == State::Phase::kDone; }

uint64_t ChunkedDecoder::decoded_bytes() const { return state_->decoded; }

const std::vector<std::pair<std::string, std::string>>& ChunkedDecoder::trailers() const { return state_->trailers; }

}  // namespace coffre::s3
