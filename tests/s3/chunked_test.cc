#include "coffre/s3/chunked.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/hash.h"
#include "coffre/s3/sigv4.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kSeed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
constexpr std::string_view kTrailerSeed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";

// The AuthResult Authenticate produces for the AWS streaming examples.
AuthResult ExampleAuth(PayloadMode mode, std::string_view seed) {
  AuthResult auth;
  auth.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  auth.payload_mode = mode;
  auth.amz_date = "20130524T000000Z";
  auth.scope = "20130524/us-east-1/s3/aws4_request";
  auth.seed_signature = std::string(seed);
  auth.signing_key = DeriveSigningKey(SecretBytes(AsBytes(kSecret)), "20130524", "us-east-1", "s3");
  return auth;
}

std::string ChunkHeader(size_t size, std::string_view signature) {
  char hex[32];
  std::snprintf(hex, sizeof hex, "%zx", size);
  return std::string(hex) + ";chunk-signature=" + std::string(signature) + "\r\n";
}

// The body of the AWS "PUT Object in chunks" example: 64 KiB + 1 KiB of 'a', then the final chunk.
std::string AwsExampleBody() {
  return ChunkHeader(65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648") +
         std::string(65536, 'a') + "\r\n" +
         ChunkHeader(1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497") +
         std::string(1024, 'a') + "\r\n" +
         ChunkHeader(0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9") + "\r\n";
}

// The same upload with a signed x-amz-checksum-crc32c trailer (AWS trailer example).
std::string AwsTrailerExampleBody(
    std::string_view trailer_signature = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435") {
  return ChunkHeader(65536, "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2") +
         std::string(65536, 'a') + "\r\n" +
         ChunkHeader(1024, "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7") +
         std::string(1024, 'a') + "\r\n" +
         ChunkHeader(0, "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992") +
         "x-amz-checksum-crc32c:sOO8/Q==\r\n" + "x-amz-trailer-signature:" + std::string(trailer_signature) +
         "\r\n\r\n";
}

// Signs chunks of the given sizes ('a'+i pattern) from `auth`'s seed, as a streaming client would.
std::string SignedBody(const AuthResult& auth, const std::vector<size_t>& sizes, std::string* payload = nullptr) {
  std::string body;
  std::string prev = auth.seed_signature;
  for (size_t n = 0; n < sizes.size(); ++n) {
    std::string data(sizes[n], static_cast<char>('a' + n % 26));
    if (payload != nullptr) {
      *payload += data;
    }
    prev = ChunkSignature(auth, prev, HexEncode(crypto::Sha256::Digest(AsBytes(data))));
    body += ChunkHeader(sizes[n], prev) + data + "\r\n";
  }
  prev = ChunkSignature(auth, prev, HexEncode(crypto::Sha256::Digest(AsBytes(""))));
  body += ChunkHeader(0, prev) + "\r\n";
  return body;
}

struct DecodeResult {
  std::optional<Error> error;
  std::string data;
  bool done = false;
  std::vector<std::pair<std::string, std::string>> trailers;
};

// Feeds `body` in pieces of the given sizes (cycled), then calls Finish; `in_place`: through
// FeedInPlace, each piece copied into a buffer of its own first, as the gateway's read buffer.
DecodeResult DecodeWith(bool in_place, const AuthResult& auth, std::string_view body, const std::vector<size_t>& splits,
                        std::vector<std::string> declared, std::optional<uint64_t> length) {
  ChunkedDecoder decoder(auth, std::move(declared), length);
  DecodeResult result;
  Bytes out;
  size_t pos = 0;
  size_t split = 0;
  while (pos < body.size()) {
    const size_t n = std::min(splits.empty() ? body.size() : splits[split++ % splits.size()], body.size() - pos);
    if (in_place) {
      const ByteView piece = AsBytes(body.substr(pos, n));
      Bytes buffer(piece.begin(), piece.end());
      size_t payload = 0;
      result.error = decoder.FeedInPlace(buffer, payload);
      EXPECT_LE(payload, n);
      out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(payload));
    } else {
      result.error = decoder.Feed(AsBytes(body.substr(pos, n)), out);
    }
    pos += n;
    if (result.error) {
      break;
    }
  }
  if (!result.error) {
    result.error = decoder.Finish();
  }
  result.data.assign(out.begin(), out.end());
  result.done = decoder.done();
  result.trailers = decoder.trailers();
  EXPECT_EQ(decoder.decoded_bytes(), result.data.size());
  return result;
}

// Decodes both ways, which must agree, and returns the result.
DecodeResult Decode(const AuthResult& auth, std::string_view body, const std::vector<size_t>& splits,
                    std::vector<std::string> declared = {}, std::optional<uint64_t> length = std::nullopt) {
  DecodeResult copied = DecodeWith(false, auth, body, splits, declared, length);
  const DecodeResult in_place = DecodeWith(true, auth, body, splits, std::move(declared), length);
  EXPECT_EQ(copied.error.has_value(), in_place.error.has_value());
  if (copied.error && in_place.error) {
    EXPECT_EQ(copied.error->code, in_place.error->code);
  }
  EXPECT_EQ(copied.data, in_place.data);
  EXPECT_EQ(copied.done, in_place.done);
  EXPECT_EQ(copied.trailers, in_place.trailers);
  return copied;
}

DecodeResult DecodeOneShot(const AuthResult& auth, std::string_view body, std::vector<std::string> declared = {},
                           std::optional<uint64_t> length = std::nullopt) {
  return Decode(auth, body, {}, std::move(declared), length);
}

ErrorCode ErrorOf(const DecodeResult& r) {
  EXPECT_TRUE(r.error.has_value());
  return r.error ? r.error->code : ErrorCode::kInternalError;
}

// --- The AWS examples -----------------------------------------------------------------------------

TEST(ChunkedDecoder, AwsExampleOneShot) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const DecodeResult r = DecodeOneShot(auth, AwsExampleBody(), {}, 66560);
  ASSERT_FALSE(r.error) << r.error->effective_message();
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.data, std::string(66560, 'a'));
  EXPECT_TRUE(r.trailers.empty());
}

TEST(ChunkedDecoder, AwsExampleContentLengthMatches) { EXPECT_EQ(AwsExampleBody().size(), 66824u); }

TEST(ChunkedDecoder, AwsExampleByteByByte) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const DecodeResult r = Decode(auth, AwsExampleBody(), {1}, {}, 66560);
  ASSERT_FALSE(r.error) << r.error->effective_message();
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.data, std::string(66560, 'a'));
}

TEST(ChunkedDecoder, AwsExampleRandomSplits) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const std::string body = AwsExampleBody();
  std::mt19937 rng(1234);
  for (int round = 0; round < 50; ++round) {
    std::vector<size_t> splits;
    std::uniform_int_distribution<size_t> dist(1, round % 2 == 0 ? 17 : 9000);
    for (int i = 0; i < 64; ++i) {
      splits.push_back(dist(rng));
    }
    const DecodeResult r = Decode(auth, body, splits, {}, 66560);
    ASSERT_FALSE(r.error) << "round " << round << ": " << r.error->effective_message();
    ASSERT_EQ(r.data, std::string(66560, 'a'));
  }
}

TEST(ChunkedDecoder, AwsExampleFlowFromAuthenticate) {
  HttpRequestView request;
  request.method = "PUT";
  request.target = "/examplebucket/chunkObject.txt";
  request.headers = {
      {"Host", "s3.amazonaws.com"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
       "x-amz-decoded-content-length;x-amz-storage-class,"
       "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"},
      {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
      {"Content-Encoding", "aws-chunked"},
      {"x-amz-decoded-content-length", "66560"},
      {"Content-Length", "66824"},
  };
  FixedClock clock(ParseAmzDate("20130524T000000Z").value());
  AuthOptions options;
  options.clock = &clock;
  auto auth = Authenticate(
      request,
      [](std::string_view) -> Expected<Credential, Error> {
        return Credential{"t", SecretBytes(AsBytes(kSecret))};
      },
      options);
  ASSERT_OK(auth);
  const DecodeResult r = Decode(*auth, AwsExampleBody(), {4096, 3, 77}, {}, 66560);
  ASSERT_FALSE(r.error) << r.error->effective_message();
  EXPECT_EQ(r.data, std::string(66560, 'a'));
}

TEST(ChunkedDecoder, AwsTrailerExample) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  for (const std::vector<size_t>& splits : {std::vector<size_t>{}, std::vector<size_t>{1}, {5, 1000, 3}}) {
    const DecodeResult r = Decode(auth, AwsTrailerExampleBody(), splits, {"x-amz-checksum-crc32c"}, 66560);
    ASSERT_FALSE(r.error) << r.error->effective_message();
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.data, std::string(66560, 'a'));
    ASSERT_EQ(r.trailers.size(), 1u);
    EXPECT_EQ(r.trailers[0].first, "x-amz-checksum-crc32c");
    EXPECT_EQ(r.trailers[0].second, "sOO8/Q==");
  }
}

TEST(ChunkedDecoder, TrailerVariantsClientsSend) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  std::string body = AwsTrailerExampleBody();
  // Without the final empty line.
  const std::string no_final_crlf = body.substr(0, body.size() - 2);
  EXPECT_FALSE(DecodeOneShot(auth, no_final_crlf, {"x-amz-checksum-crc32c"}).error);
  // Without the last line's CRLF either.
  EXPECT_FALSE(DecodeOneShot(auth, body.substr(0, body.size() - 4), {"x-amz-checksum-crc32c"}).error);
  // With an empty line between the final chunk and the trailers.
  const size_t trailer_at = body.find("x-amz-checksum-crc32c:");
  std::string separated = body;
  separated.insert(trailer_at, "\r\n");
  const DecodeResult r = DecodeOneShot(auth, separated, {"x-amz-checksum-crc32c"});
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.trailers.size(), 1u);
}

// --- Signature attacks ----------------------------------------------------------------------------

TEST(ChunkedDecoder, BadChunkSignatureFailsTheBodyForGood) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body[body.find("ad80c730") + 3] = '1';
  ChunkedDecoder decoder(auth, {}, 66560);
  Bytes out;
  const auto error = decoder.Feed(AsBytes(body), out);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, ErrorCode::kSignatureDoesNotMatch);
  // The caller stores nothing unless Finish succeeds, and it never does after a bad chunk.
  const auto finished = decoder.Finish();
  ASSERT_TRUE(finished);
  EXPECT_EQ(finished->code, ErrorCode::kSignatureDoesNotMatch);
  EXPECT_FALSE(decoder.done());
}

TEST(ChunkedDecoder, TamperedChunkDataRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body[body.find("\r\n") + 2 + 1000] = 'b';
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body)), ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, SecondChunkTamperedFailsTheBody) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body[body.size() - 200] = 'b';  // inside the 1 KiB chunk
  for (const std::vector<size_t>& splits : {std::vector<size_t>{}, {1}, {4096, 7}}) {
    const DecodeResult r = Decode(auth, body, splits);
    EXPECT_EQ(ErrorOf(r), ErrorCode::kSignatureDoesNotMatch);
    EXPECT_FALSE(r.done);
  }
}

TEST(ChunkedDecoder, ChunkSignaturesReplayedFromAnotherSeedRejected) {
  // The trailer example's chunks are valid for its own seed, not for the plain example's request.
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsTrailerExampleBody(), {"x-amz-checksum-crc32c"})),
            ErrorCode::kSignatureDoesNotMatch);
  const AuthResult other = ExampleAuth(PayloadMode::kStreamingSigned, kTrailerSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(other, AwsExampleBody())), ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, ChunksReorderedOrDroppedRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string payload;
  const std::string body = SignedBody(auth, {8192, 8192, 100}, &payload);
  ASSERT_FALSE(DecodeOneShot(auth, body).error);
  // Drop the first chunk.
  const size_t first_len = body.find("\r\n") + 2 + 8192 + 2;
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body.substr(first_len))), ErrorCode::kSignatureDoesNotMatch);
  // Swap the first two chunks.
  const std::string first = body.substr(0, first_len);
  const std::string second = body.substr(first_len, first_len);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, second + first + body.substr(2 * first_len))),
            ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, FinalChunkSignatureChecked) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body[body.find("b6c6ea8a")] = 'c';
  const DecodeResult r = DecodeOneShot(auth, body);
  EXPECT_EQ(ErrorOf(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, MissingChunkSignatureRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, "400\r\n" + std::string(1024, 'a') + "\r\n0\r\n\r\n")),
            ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, TamperedTrailerRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  std::string body = AwsTrailerExampleBody();
  body.replace(body.find("sOO8/Q=="), 8, "AAAAAA==");
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32c"})), ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, BadTrailerSignatureRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  // The signature the AWS documentation prints for this example, which does not verify.
  EXPECT_EQ(ErrorOf(DecodeOneShot(
                auth, AwsTrailerExampleBody("63bddb248ad2590c92712055f51b8e78ab024eead08276b24f010b0efd74843f"),
                {"x-amz-checksum-crc32c"})),
            ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, MissingTrailerSignatureRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  std::string body = AwsTrailerExampleBody();
  body.erase(body.find("x-amz-trailer-signature:"));
  body += "\r\n";
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32c"})), ErrorCode::kSignatureDoesNotMatch);
}

TEST(ChunkedDecoder, TrailerAfterSignatureRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  std::string body = AwsTrailerExampleBody();
  body.insert(body.size() - 2, "x-amz-checksum-crc32:AAAAAA==\r\n");
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32c", "x-amz-checksum-crc32"})),
            ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, UndeclaredTrailerRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSignedTrailer, kTrailerSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsTrailerExampleBody(), {"x-amz-checksum-sha256"})),
            ErrorCode::kInvalidRequest);
}

// --- Framing -------------------------------------------------------------------------------------

TEST(ChunkedDecoder, TruncatedBodyIsIncomplete) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const std::string body = AwsExampleBody();
  for (size_t cut : {size_t{0}, size_t{10}, size_t{90}, size_t{40000}, size_t{65626}, size_t{65627}, body.size() - 90,
                     body.size() - 3}) {
    const DecodeResult r = DecodeOneShot(auth, body.substr(0, cut));
    EXPECT_EQ(ErrorOf(r), ErrorCode::kIncompleteBody) << cut;
    EXPECT_FALSE(r.done);
  }
}

TEST(ChunkedDecoder, DecodedLengthMismatch) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsExampleBody(), {}, 66561)), ErrorCode::kIncompleteBody);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsExampleBody(), {}, 66559)), ErrorCode::kIncompleteBody);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsExampleBody(), {}, 0)), ErrorCode::kIncompleteBody);
}

TEST(ChunkedDecoder, BadHexSizeRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const std::string sig(64, 'a');
  for (const std::string& header : {"zz;chunk-signature=" + sig, ";chunk-signature=" + sig, "-1;chunk-signature=" + sig,
                                    " 10;chunk-signature=" + sig, "10 ;chunk-signature=" + sig,
                                    "10;chunk-signature=" + sig + "x", "10;chunk-signature=" + std::string(63, 'a'),
                                    "10;chunk-signature=" + sig + ";x=y", "0x10;chunk-signature=" + sig}) {
    const DecodeResult r = DecodeOneShot(auth, header + "\r\n");
    EXPECT_TRUE(r.error) << header;
    EXPECT_TRUE(r.error &&
                (r.error->code == ErrorCode::kInvalidRequest || r.error->code == ErrorCode::kSignatureDoesNotMatch))
        << header;
  }
}

TEST(ChunkedDecoder, OversizedHeaderLineRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const std::string long_line = "400;chunk-signature=" + std::string(10000, 'a');
  ChunkedDecoder decoder(auth, {}, std::nullopt);
  Bytes out;
  std::optional<Error> error;
  for (char c : long_line) {  // never a newline: the decoder must give up without one
    error = decoder.Feed(AsBytes(std::string_view(&c, 1)), out);
    if (error) {
      break;
    }
  }
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, ErrorCode::kInvalidRequest);

  const AuthResult unsigned_auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  EXPECT_EQ(ErrorOf(DecodeOneShot(unsigned_auth, "0\r\nx-amz-checksum-crc32:" + std::string(5000, 'A') + "\r\n\r\n",
                                  {"x-amz-checksum-crc32"})),
            ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, OversizedChunkRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  const std::string sig(64, 'a');
  // SDKs send at most 1 MiB per signed chunk: one byte more gets S3's chunk-size error, from the
  // header alone, before any of the chunk's data is taken.
  for (const char* size : {"100001", "1000000", "1000001", "ffffffffffffffffffff"}) {
    ChunkedDecoder decoder(auth, {}, std::nullopt);
    Bytes out;
    const auto error = decoder.Feed(AsBytes(std::string(size) + ";chunk-signature=" + sig + "\r\n"), out);
    ASSERT_TRUE(error) << size;
    EXPECT_EQ(error->code, ErrorCode::kInvalidChunkSizeError) << size;
    EXPECT_EQ(error->http_status(), 403);
    EXPECT_TRUE(out.empty());
  }
}

TEST(ChunkedDecoder, OneMiBSignedChunkAccepted) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string payload;
  const std::string body = SignedBody(auth, {size_t{1} << 20, size_t{1} << 20, 17}, &payload);
  const DecodeResult r = Decode(auth, body, {65536, 1000, 300000});
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.data, payload);
}

TEST(ChunkedDecoder, SmallNonFinalChunkRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, SignedBody(auth, {100, 8192}))), ErrorCode::kInvalidChunkSizeError);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, SignedBody(auth, {8192, 8191, 8192}))), ErrorCode::kInvalidChunkSizeError);
  std::string payload;
  const DecodeResult ok = DecodeOneShot(auth, SignedBody(auth, {8192, 8192, 1}, &payload));
  EXPECT_FALSE(ok.error);
  EXPECT_EQ(ok.data, payload);
  EXPECT_FALSE(DecodeOneShot(auth, SignedBody(auth, {1})).error);
  EXPECT_FALSE(DecodeOneShot(auth, SignedBody(auth, {})).error);
}

TEST(ChunkedDecoder, CrlfAfterChunkDataRequired) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  const size_t crlf = body.find("\r\n") + 2 + 65536;
  body[crlf] = 'x';
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body)), ErrorCode::kInvalidRequest);
  body = AwsExampleBody();
  body.erase(crlf, 1);  // bare LF
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body)), ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, HeaderLineNeedsCrlf) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body.erase(body.find("\r\n"), 1);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body)), ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, DataAfterTheEndRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsExampleBody() + "x")), ErrorCode::kInvalidRequest);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, AwsExampleBody() + "foo:bar\r\n")), ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, TrailerInModeWithoutTrailersRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::string body = AwsExampleBody();
  body.insert(body.size() - 2, "x-amz-checksum-crc32:AAAAAA==\r\n");
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32"})), ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, ErrorsAreSticky) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  ChunkedDecoder decoder(auth, {}, std::nullopt);
  Bytes out;
  ASSERT_TRUE(decoder.Feed(AsBytes("zz\r\n"), out));
  const std::string body = AwsExampleBody();
  const auto again = decoder.Feed(AsBytes(body), out);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->code, ErrorCode::kInvalidRequest);
  EXPECT_TRUE(decoder.Finish());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(decoder.done());
}

TEST(ChunkedDecoder, NonStreamingAuthRefused) {
  const AuthResult auth = ExampleAuth(PayloadMode::kUnsigned, kSeed);
  EXPECT_TRUE(DecodeOneShot(auth, AwsExampleBody()).error);
}

// --- STREAMING-UNSIGNED-PAYLOAD-TRAILER ------------------------------------------------------------

std::string UnsignedTrailerBody() {
  return "2000\r\n" + std::string(8192, 'x') + "\r\n" + "5\r\nhello\r\n" + "0\r\n" +
         "x-amz-checksum-crc32:i9aeUg==\r\n\r\n";
}

TEST(ChunkedDecoder, UnsignedTrailerWithCrc32) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  const std::string expected = std::string(8192, 'x') + "hello";
  for (const std::vector<size_t>& splits : {std::vector<size_t>{}, std::vector<size_t>{1}, {2, 3, 5, 7, 4096}}) {
    const DecodeResult r = Decode(auth, UnsignedTrailerBody(), splits, {"x-amz-checksum-crc32"}, 8197);
    ASSERT_FALSE(r.error) << r.error->effective_message();
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.data, expected);
    ASSERT_EQ(r.trailers.size(), 1u);
    EXPECT_EQ(r.trailers[0], (std::pair<std::string, std::string>{"x-amz-checksum-crc32", "i9aeUg=="}));
  }
}

TEST(ChunkedDecoder, UnsignedTrailerStreamsBytesAsTheyArrive) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  ChunkedDecoder decoder(auth, {"x-amz-checksum-crc32"}, std::nullopt);
  Bytes out;
  ASSERT_FALSE(decoder.Feed(AsBytes("2000\r\nabc"), out));
  EXPECT_EQ(AsChars(out), "abc");
  EXPECT_EQ(decoder.decoded_bytes(), 3u);
}

TEST(ChunkedDecoder, SignedChunkStreamsAsItArrives) {
  // A signed chunk is hashed as it passes through, never held whole: memory per request stays
  // at the caller's read buffer whatever the chunk size. Its signature is checked at its end;
  // callers keep nothing unless Finish succeeds.
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  ChunkedDecoder decoder(auth, {}, std::nullopt);
  Bytes out;
  const std::string body = AwsExampleBody();
  const size_t header = ChunkHeader(65536, std::string(64, 'a')).size();
  ASSERT_FALSE(decoder.Feed(AsBytes(std::string_view(body).substr(0, 60000)), out));
  EXPECT_EQ(out.size(), 60000u - header);
  EXPECT_EQ(decoder.decoded_bytes(), 60000u - header);
  out.clear();
  ASSERT_FALSE(decoder.Feed(AsBytes(std::string_view(body).substr(60000)), out));
  EXPECT_EQ(out.size(), 66560u - (60000u - header));
  EXPECT_FALSE(decoder.Finish());
  EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoder, UnsignedTrailerVariants) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  // Uppercase hex, chunk extensions ignored, no trailers at all.
  DecodeResult r = DecodeOneShot(auth, "A;ext=1\r\n0123456789\r\n0\r\n\r\n", {}, 10);
  ASSERT_FALSE(r.error) << r.error->effective_message();
  EXPECT_EQ(r.data, "0123456789");
  // Trailer without the final empty line.
  r = DecodeOneShot(auth, "0\r\nx-amz-checksum-crc32:AAAAAA==\r\n", {"x-amz-checksum-crc32"});
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.trailers.size(), 1u);
  // Names are case-insensitive and values trimmed.
  r = DecodeOneShot(auth, "0\r\nX-Amz-Checksum-CRC32: AAAAAA== \r\n\r\n", {"X-Amz-Checksum-Crc32"});
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.trailers[0], (std::pair<std::string, std::string>{"x-amz-checksum-crc32", "AAAAAA=="}));
}

TEST(ChunkedDecoder, UnsignedTrailerUndeclaredOrDuplicateRejected) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, UnsignedTrailerBody(), {"x-amz-checksum-crc32c"})), ErrorCode::kInvalidRequest);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, UnsignedTrailerBody(), {})), ErrorCode::kInvalidRequest);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, "0\r\nx-amz-checksum-crc32:A\r\nx-amz-checksum-crc32:B\r\n\r\n",
                                  {"x-amz-checksum-crc32"})),
            ErrorCode::kInvalidRequest);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, "0\r\nno-colon\r\n\r\n", {"no-colon"})), ErrorCode::kInvalidRequest);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, "0\r\nx-amz-trailer-signature:" + std::string(64, 'a') + "\r\n\r\n",
                                  {"x-amz-checksum-crc32"})),
            ErrorCode::kInvalidRequest);
}

TEST(ChunkedDecoder, UnsignedTrailerTruncatedAndLengthMismatch) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingUnsignedTrailer, "");
  const std::string body = UnsignedTrailerBody();
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body.substr(0, 100), {"x-amz-checksum-crc32"})), ErrorCode::kIncompleteBody);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32"}, 8196)), ErrorCode::kIncompleteBody);
  EXPECT_EQ(ErrorOf(DecodeOneShot(auth, body, {"x-amz-checksum-crc32"}, 9000)), ErrorCode::kIncompleteBody);
}

TEST(ChunkedDecoder, ByteByByteEqualsOneShotForGeneratedBodies) {
  const AuthResult auth = ExampleAuth(PayloadMode::kStreamingSigned, kSeed);
  std::mt19937 rng(99);
  for (int round = 0; round < 10; ++round) {
    std::vector<size_t> sizes;
    std::uniform_int_distribution<size_t> size_dist(8192, 20000);
    const int chunks = static_cast<int>(rng() % 4);
    for (int i = 0; i < chunks; ++i) {
      sizes.push_back(size_dist(rng));
    }
    sizes.push_back(rng() % 8192 + 1);
    std::string payload;
    const std::string body = SignedBody(auth, sizes, &payload);
    const DecodeResult one = DecodeOneShot(auth, body, {}, payload.size());
    const DecodeResult bytewise = Decode(auth, body, {1}, {}, payload.size());
    ASSERT_FALSE(one.error);
    ASSERT_FALSE(bytewise.error);
    EXPECT_EQ(one.data, payload);
    EXPECT_EQ(bytewise.data, payload);
  }
}

}  // namespace
}  // namespace coffre::s3
