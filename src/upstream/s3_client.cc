#include "coffre/upstream/s3_client.h"

#include <algorithm>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <string>
#include <thread>
#include <utility>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"
#include "coffre/sigv4/sigv4.h"
#include "upstream/backoff.h"
#include "upstream/connection.h"
#include "upstream/responses.h"

namespace coffre::upstream {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

// Answers read whole (errors, listings, multipart results) stay small; anything larger is not
// an answer this client asked for.
constexpr size_t kMaxCollectedAnswer = 8 * 1024 * 1024;
// An error document read after a failed write is kept to this much.
constexpr size_t kMaxErrorBody = 64 * 1024;

// One operation as sent: what to ask, with which body, and where the answer goes.
struct Call {
  std::string what;  // "GET key", for messages
  bhttp::verb method = bhttp::verb::get;
  std::string_view key;  // empty: the bucket
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the signing ones; lower-case
  ByteView body;                                             // an in-memory body
  std::optional<uint64_t> streamed_length;                   // or one the caller streams (UploadStream)
  bool idempotent = true;
  const BodySink* sink = nullptr;  // a 2xx answer's body goes here; otherwise it is collected
  std::optional<ByteRange> range;  // asked for with a Range header
};

struct Answer {
  unsigned status = 0;
  Connection::ResponseHead head;
  std::string body;  // collected when the call has no sink
};

// How far an attempt got, which decides whether repeating it is safe.
struct Progress {
  bool request_sent = false;    // some byte of the request may have reached the upstream
  bool body_delivered = false;  // some byte of the answer reached the caller's sink
};

std::string Field(const Connection::ResponseHead& head, bhttp::field name) {
  const auto it = head.find(name);
  return it == head.end() ? std::string() : std::string(it->value());
}

std::string RangeHeader(const ByteRange& range) {
  std::string out = "bytes=" + std::to_string(range.first) + "-";
  if (range.last) {
    out += std::to_string(*range.last);
  }
  return out;
}

// The object's whole size from a 206's "Content-Range: bytes 0-9/1234", or a 200's length.
std::optional<uint64_t> ObjectSize(const Answer& answer) {
  if (answer.status != 206) {
    return ParseDecimal(Field(answer.head, bhttp::field::content_length));
  }
  const std::string range = Field(answer.head, bhttp::field::content_range);
  const size_t slash = range.rfind('/');
  return slash == std::string::npos ? std::nullopt : ParseDecimal(std::string_view(range).substr(slash + 1));
}

// A server that ignores Range answers 200 with the whole object, which can stand for the range
// only when that asked from the first byte to the end or beyond.
bool AnswersRange(const Answer& answer, const std::optional<ByteRange>& range) {
  if (!range || answer.status != 200) {
    return true;
  }
  const std::optional<uint64_t> length = ParseDecimal(Field(answer.head, bhttp::field::content_length));
  return range->first == 0 && length && (!range->last || *range->last + 1 >= *length);
}

Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const S3ClientOptions& options) {
  auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  tls->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (options.ca_file.empty()) {
    tls->set_default_verify_paths(ec);
  } else {
    tls->load_verify_file(options.ca_file, ec);
  }
  if (ec) {
    return Status::InvalidArgument("upstream CA file " + options.ca_file + ": " + ec.message());
  }
  return tls;
}

}  // namespace

class S3Client::Impl {
 public:
  Impl(S3ClientOptions options, Endpoint endpoint, std::unique_ptr<asio::ssl::context> tls, const coffre::Clock& clock)
      : options_(std::move(options)),
        endpoint_(std::move(endpoint)),
        tls_(std::move(tls)),
        clock_(clock),
        pool_(options_, endpoint_, tls_.get(), counters_) {}

  Result<Answer> Execute(const Call& call);
  Result<UploadStream> BeginStream(Call call);

  // The steps an UploadStream takes on the connection it holds.
  Status StreamWrite(UploadStream::State& stream, ByteView piece);
  Result<Answer> StreamFinish(UploadStream::State& stream);
  void StreamEnded(UploadStream::State& stream, const Status& status);
  Status EarlyAnswer(UploadStream::State& stream, Status write_failure);

  bool CanStream() const { return endpoint_.tls || endpoint_.loopback_address; }
  const S3ClientOptions& options() const { return options_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const ClientCounters& counters() const { return counters_; }

 private:
  Result<Answer> Attempt(const Call& call, std::string_view payload_hash, Clock::time_point deadline,
                         Progress& progress);
  Connection::RequestHead SignedHead(const Call& call, std::string_view payload_hash) const;
  Result<Answer> Receive(Connection& connection, const Call& call, Clock::time_point deadline, Progress& progress);
  bool MayRetry(const Call& call, const Status& status, const Progress& progress) const;
  // Sleeps before attempt `attempt` + 1; false when that would pass the deadline.
  bool BackOff(int attempt, Clock::time_point deadline);
  Status GiveUp(Status status, int attempts);

  const S3ClientOptions options_;
  const Endpoint endpoint_;
  const std::unique_ptr<asio::ssl::context> tls_;
  const coffre::Clock& clock_;
  ClientCounters counters_;
  ConnectionPool pool_;
};

Result<Answer> S3Client::Impl::Execute(const Call& call) {
  counters_.operations.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point deadline = Clock::now() + options_.retry.total_deadline;
  // The body's hash is signed once for every attempt (a streamed body goes through BeginStream).
  const std::string payload_hash = HexEncode(crypto::Sha256::Digest(call.body));
  for (int attempt = 1;; ++attempt) {
    Progress progress;
    const Clock::time_point started = Clock::now();
    Result<Answer> answer = Attempt(call, payload_hash, deadline, progress);
    counters_.RecordAttempt(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
    if (answer.ok()) {
      return answer;
    }
    if (attempt >= options_.retry.max_attempts || !MayRetry(call, answer.status(), progress) ||
        !BackOff(attempt, deadline)) {
      return GiveUp(answer.status(), attempt);
    }
  }
}

bool S3Client::Impl::BackOff(int attempt, Clock::time_point deadline) {
  uint64_t random = 0;
  RandomFill(std::span(reinterpret_cast<uint8_t*>(&random), sizeof random));
  const std::chrono::milliseconds delay = BackoffDelay(options_.retry, attempt, random);
  if (Clock::now() + delay >= deadline) {
    return false;
  }
  std::this_thread::sleep_for(delay);
  counters_.retries.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Only transient failures (Unavailable: transport errors, 5xx, SlowDown) are retried, and only
// when repeating cannot do harm: an operation that is not idempotent only if nothing was sent; a
// GET only if the caller has seen none of the answer yet. (A streamed body, which cannot be sent
// again, is retried only before its first byte: BeginStream.)
bool S3Client::Impl::MayRetry(const Call& call, const Status& status, const Progress& progress) const {
  if (status.code() != StatusCode::kUnavailable || progress.body_delivered) {
    return false;
  }
  return call.idempotent || !progress.request_sent;
}

Status S3Client::Impl::GiveUp(Status status, int attempts) {
  counters_.RecordFailure(status.code());
  if (attempts == 1) {
    return status;
  }
  return Status(status.code(), status.message() + " (after " + std::to_string(attempts) + " attempts)");
}

Result<Answer> S3Client::Impl::Attempt(const Call& call, std::string_view payload_hash, Clock::time_point deadline,
                                       Progress& progress) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection, pool_.Acquire(deadline));
  Connection::RequestHead head = SignedHead(call, payload_hash);
  progress.request_sent = true;
  COFFRE_RETURN_IF_ERROR(connection->WriteHead(head, options_.request_timeout, deadline));
  if (!call.body.empty()) {
    COFFRE_RETURN_IF_ERROR(connection->WriteBody(call.body, options_.request_timeout, deadline));
  }
  Result<Answer> answer = Receive(*connection, call, deadline, progress);
  pool_.Release(std::move(connection));
  return answer;
}

Connection::RequestHead S3Client::Impl::SignedHead(const Call& call, std::string_view payload_hash) const {
  const std::string canonical_query = sigv4::CanonicalQuery(call.query);
  const std::string target = RequestTarget(endpoint_, call.key, canonical_query);
  const std::string amz_date = FormatAmzDate(clock_.Now());
  std::vector<std::pair<std::string, std::string>> headers = call.headers;
  if (call.range) {
    headers.emplace_back("range", RangeHeader(*call.range));
  }
  headers.emplace_back("host", endpoint_.host_header);
  headers.emplace_back("x-amz-date", amz_date);
  headers.emplace_back("x-amz-content-sha256", std::string(payload_hash));
  if (call.method == bhttp::verb::put || call.method == bhttp::verb::post) {
    const uint64_t length = call.streamed_length.value_or(call.body.size());
    headers.emplace_back("content-length", std::to_string(length));
  }
  std::sort(headers.begin(), headers.end());
  // Every header sent is signed, so nothing on the way can add or change one unnoticed.
  sigv4::HeaderFields fields;
  std::vector<std::string> signed_headers;
  for (const auto& [name, value] : headers) {
    fields.emplace_back(name, value);
    signed_headers.push_back(name);
  }
  const std::string authorization =
      sigv4::Authorization({.access_key_id = options_.access_key_id,
                            .secret_access_key = options_.secret_access_key,
                            .region = options_.region},
                           amz_date,
                           {.method = bhttp::to_string(call.method),
                            .canonical_uri = std::string_view(target).substr(0, target.find('?')),
                            .canonical_query = canonical_query,
                            .headers = fields,
                            .signed_headers = signed_headers,
                            .payload_hash = payload_hash});
  Connection::RequestHead head(call.method, target, 11);
  for (const auto& [name, value] : headers) {
    head.set(name, value);
  }
  head.set(bhttp::field::authorization, authorization);
  return head;
}

Result<Answer> S3Client::Impl::Receive(Connection& connection, const Call& call, Clock::time_point deadline,
                                       Progress& progress) {
  Answer answer;
  COFFRE_ASSIGN_OR_RETURN(answer.head,
                          connection.ReadHead(call.method == bhttp::verb::head, options_.request_timeout, deadline));
  answer.status = answer.head.result_int();
  const bool success = answer.status >= 200 && answer.status < 300;
  if (success && !AnswersRange(answer, call.range)) {
    return Status::Internal("upstream " + call.what + ": the answer is not the range asked for");
  }
  if (success && call.sink != nullptr) {
    COFFRE_RETURN_IF_ERROR(connection.ReadBody(
        [&](ByteView piece) {
          progress.body_delivered = true;
          return (*call.sink)(piece);
        },
        options_.request_timeout, deadline));
    return answer;
  }
  COFFRE_RETURN_IF_ERROR(connection.ReadBody(
      [&](ByteView piece) {
        if (answer.body.size() + piece.size() > kMaxCollectedAnswer) {
          return Status::Internal("upstream " + call.what + ": the answer is larger than expected");
        }
        answer.body.append(AsChars(piece));
        return Status::Ok();
      },
      options_.request_timeout, deadline));
  if (!success) {
    return ErrorStatus(call.what, answer.status, ParseErrorBody(answer.body));
  }
  return answer;
}

// What an UploadStream holds: the connection its request's head went out on, and how much of the
// declared body is still to come.
struct UploadStream::State {
  S3Client::Impl* impl = nullptr;
  Call call;  // what, method: for the answer (the key is not kept)
  std::unique_ptr<Connection> connection;
  uint64_t remaining = 0;
  Clock::time_point started;
  Status failed;  // the error that ended the stream early
  bool ended = false;
};

UploadStream::UploadStream(std::unique_ptr<State> state) : state_(std::move(state)) {}
UploadStream::UploadStream(UploadStream&& other) noexcept = default;
UploadStream& UploadStream::operator=(UploadStream&& other) noexcept = default;

UploadStream::~UploadStream() {
  if (state_ && !state_->ended) {
    // The connection closes with the state: the upstream sees a body cut short. The caller chose
    // to abandon it, so it is no failed operation of the client's.
    state_->impl->StreamEnded(*state_, Status::Ok());
  }
}

uint64_t UploadStream::remaining() const { return state_ ? state_->remaining : 0; }

Status UploadStream::Write(ByteView piece) {
  if (!state_ || state_->ended) {
    return state_ && !state_->failed.ok() ? state_->failed
                                          : Status::FailedPrecondition("upstream: write to a finished upload stream");
  }
  return state_->impl->StreamWrite(*state_, piece);
}

Result<std::string> UploadStream::Finish() {
  if (!state_ || state_->ended) {
    return state_ && !state_->failed.ok() ? state_->failed
                                          : Status::FailedPrecondition("upstream: an upload stream finished twice");
  }
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, state_->impl->StreamFinish(*state_));
  return Field(answer.head, bhttp::field::etag);
}

// Only the head is retried: until a byte of the body is sent, the upstream cannot have acted on
// the request, so a stale pooled connection or a refused connect is worth another try.
Result<UploadStream> S3Client::Impl::BeginStream(Call call) {
  if (!CanStream()) {
    return Status::FailedPrecondition("upstream " + call.what +
                                      ": a streamed body is sent unsigned, which needs https (or a loopback address)");
  }
  counters_.operations.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point deadline = Clock::now() + options_.retry.total_deadline;
  for (int attempt = 1;; ++attempt) {
    const Clock::time_point started = Clock::now();
    Result<std::unique_ptr<Connection>> connection = pool_.Acquire(deadline);
    Status status = StatusOf(connection);
    if (connection.ok()) {
      Connection::RequestHead head = SignedHead(call, sigv4::kUnsignedPayload);
      status = (*connection)->WriteHead(head, options_.request_timeout, deadline);
    }
    if (status.ok()) {
      auto state = std::make_unique<UploadStream::State>();
      state->impl = this;
      state->remaining = *call.streamed_length;
      call.key = {};
      state->call = std::move(call);
      state->connection = std::move(connection).value();
      state->started = started;
      return UploadStream(std::move(state));
    }
    counters_.RecordAttempt(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
    if (status.code() != StatusCode::kUnavailable || attempt >= options_.retry.max_attempts ||
        !BackOff(attempt, deadline)) {
      return GiveUp(status, attempt);
    }
  }
}

Status S3Client::Impl::StreamWrite(UploadStream::State& stream, ByteView piece) {
  if (piece.size() > stream.remaining) {
    Status error = Status::InvalidArgument("upstream " + stream.call.what + ": more bytes than the " +
                                           std::to_string(*stream.call.streamed_length) + " declared");
    StreamEnded(stream, error);
    return error;
  }
  if (piece.empty()) {
    return Status::Ok();
  }
  // Each piece must go out within request_timeout; the stream as a whole goes at the caller's pace.
  Status status = stream.connection->WriteBody(piece, options_.request_timeout, Clock::time_point::max());
  if (!status.ok()) {
    status = EarlyAnswer(stream, std::move(status));
    StreamEnded(stream, status);
    return status;
  }
  stream.remaining -= piece.size();
  return Status::Ok();
}

Result<Answer> S3Client::Impl::StreamFinish(UploadStream::State& stream) {
  if (stream.remaining > 0) {
    const uint64_t declared = *stream.call.streamed_length;
    Status error =
        Status::InvalidArgument("upstream " + stream.call.what + ": " + std::to_string(declared - stream.remaining) +
                                " bytes of the " + std::to_string(declared) + " declared were written");
    StreamEnded(stream, error);
    return error;
  }
  Progress progress;
  Result<Answer> answer = Receive(*stream.connection, stream.call, Clock::time_point::max(), progress);
  pool_.Release(std::move(stream.connection));
  StreamEnded(stream, StatusOf(answer));
  return answer;
}

// An upstream that refuses a request from its head (a bad signature, a missing bucket) may answer
// and close before the body is through, and the next write fails on the closed connection. The
// answer, when it arrived, says more than that failure (PermissionDenied rather than Unavailable),
// so it is read, briefly, and preferred.
Status S3Client::Impl::EarlyAnswer(UploadStream::State& stream, Status write_failure) {
  const std::chrono::milliseconds wait =
      std::min<std::chrono::milliseconds>(options_.request_timeout, std::chrono::seconds(1));
  const Clock::time_point deadline = Clock::now() + wait;
  const Result<Connection::ResponseHead> head = stream.connection->ReadHead(false, wait, deadline);
  if (!head.ok() || head->result_int() < 300) {
    return write_failure;  // no answer, or a success for a body not sent whole, which is not believed
  }
  std::string body;
  (void)stream.connection->ReadBody(
      [&body](ByteView piece) {
        body.append(AsChars(piece).substr(0, kMaxErrorBody - std::min(body.size(), kMaxErrorBody)));
        return Status::Ok();
      },
      wait, deadline);
  return ErrorStatus(stream.call.what, head->result_int(), ParseErrorBody(body));
}

// Counts the stream's one attempt and its outcome; the connection, unless Finish gave it back to
// the pool, is closed here.
void S3Client::Impl::StreamEnded(UploadStream::State& stream, const Status& status) {
  stream.connection.reset();
  stream.ended = true;
  stream.failed = status;
  counters_.RecordAttempt(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - stream.started));
  if (!status.ok()) {
    counters_.RecordFailure(status.code());
  }
}

S3Client::S3Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Client::~S3Client() = default;

Result<std::unique_ptr<S3Client>> S3Client::Create(S3ClientOptions options, const coffre::Clock& clock) {
  COFFRE_ASSIGN_OR_RETURN(Endpoint endpoint, ResolveEndpoint(options));
  std::unique_ptr<asio::ssl::context> tls;
  if (endpoint.tls) {
    COFFRE_ASSIGN_OR_RETURN(tls, MakeTlsContext(options));
  }
  return std::unique_ptr<S3Client>(
      new S3Client(std::make_unique<Impl>(std::move(options), std::move(endpoint), std::move(tls), clock)));
}

const Endpoint& S3Client::endpoint() const { return impl_->endpoint(); }
const std::string& S3Client::bucket() const { return impl_->options().bucket; }
bool S3Client::CanStream() const { return impl_->CanStream(); }
const ClientCounters& S3Client::counters() const { return impl_->counters(); }

Status S3Client::HeadBucket() {
  const Result<Answer> answer = impl_->Execute({.what = "HEAD bucket", .method = bhttp::verb::head});
  return StatusOf(answer);
}

Status S3Client::CreateBucket() {
  const Result<Answer> answer = impl_->Execute({.what = "PUT bucket", .method = bhttp::verb::put});
  return StatusOf(answer);
}

Result<std::string> S3Client::PutObject(std::string_view key, ByteView body) {
  const Call call{.what = "PUT " + std::string(key), .method = bhttp::verb::put, .key = key, .body = body};
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  return Field(answer.head, bhttp::field::etag);
}

Result<std::string> S3Client::PutObject(std::string_view key, uint64_t length, const BodySource& source) {
  COFFRE_ASSIGN_OR_RETURN(UploadStream stream, BeginPutObject(key, length));
  std::vector<uint8_t> piece(std::min<uint64_t>(length, 256 * 1024));
  while (stream.remaining() > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(piece.size(), stream.remaining()));
    COFFRE_ASSIGN_OR_RETURN(const size_t produced, source(std::span(piece.data(), want)));
    if (produced == 0 || produced > want) {
      // The stream, dropped unfinished, closes its connection: the upstream stores nothing.
      return Status::InvalidArgument("upstream PUT " + std::string(key) + ": the body source produced " +
                                     std::to_string(length - stream.remaining() + produced) + " bytes of the " +
                                     std::to_string(length) + " declared");
    }
    COFFRE_RETURN_IF_ERROR(stream.Write(ByteView(piece.data(), produced)));
  }
  return stream.Finish();
}

Result<UploadStream> S3Client::BeginPutObject(std::string_view key, uint64_t length) {
  return impl_->BeginStream(
      {.what = "PUT " + std::string(key), .method = bhttp::verb::put, .key = key, .streamed_length = length});
}

Result<UploadStream> S3Client::BeginUploadPart(std::string_view key, std::string_view upload_id, int part_number,
                                               uint64_t length) {
  Call call{
      .what = "UploadPart " + std::string(key), .method = bhttp::verb::put, .key = key, .streamed_length = length};
  call.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", std::string(upload_id)}};
  return impl_->BeginStream(std::move(call));
}

Result<ObjectInfo> S3Client::GetObject(std::string_view key, const BodySink& sink, std::optional<ByteRange> range) {
  Call call{.what = "GET " + std::string(key), .method = bhttp::verb::get, .key = key, .sink = &sink, .range = range};
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  const std::optional<uint64_t> size = ObjectSize(answer);
  if (!size) {
    return Status::Internal("upstream " + call.what + ": the answer does not say the object's size");
  }
  return ObjectInfo{.size = *size, .etag = Field(answer.head, bhttp::field::etag)};
}

Result<ObjectInfo> S3Client::HeadObject(std::string_view key) {
  const Call call{.what = "HEAD " + std::string(key), .method = bhttp::verb::head, .key = key};
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  const std::optional<uint64_t> size = ParseDecimal(Field(answer.head, bhttp::field::content_length));
  if (!size) {
    return Status::Internal("upstream HEAD " + std::string(key) + ": the answer has no Content-Length");
  }
  return ObjectInfo{.size = *size, .etag = Field(answer.head, bhttp::field::etag)};
}

Status S3Client::DeleteObject(std::string_view key) {
  const Result<Answer> answer =
      impl_->Execute({.what = "DELETE " + std::string(key), .method = bhttp::verb::delete_, .key = key});
  return StatusOf(answer);
}

Result<ListPage> S3Client::ListObjectsV2(const ListRequest& request) {
  Call call{.what = "ListObjectsV2", .method = bhttp::verb::get};
  call.query = {{"list-type", "2"}, {"max-keys", std::to_string(request.max_keys)}};
  if (!request.prefix.empty()) {
    call.query.emplace_back("prefix", request.prefix);
  }
  if (!request.continuation_token.empty()) {
    call.query.emplace_back("continuation-token", request.continuation_token);
  }
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  return ParseListObjectsV2(answer.body);
}

Result<std::string> S3Client::CreateMultipartUpload(std::string_view key) {
  Call call{.what = "CreateMultipartUpload " + std::string(key), .method = bhttp::verb::post, .key = key};
  call.query = {{"uploads", ""}};
  call.idempotent = false;  // a repeat would start a second upload, left behind
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  return ParseUploadId(answer.body);
}

Result<std::string> S3Client::UploadPart(std::string_view key, std::string_view upload_id, int part_number,
                                         ByteView body) {
  Call call{.what = "UploadPart " + std::string(key), .method = bhttp::verb::put, .key = key, .body = body};
  call.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", std::string(upload_id)}};
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  return Field(answer.head, bhttp::field::etag);
}

Result<std::string> S3Client::CompleteMultipartUpload(std::string_view key, std::string_view upload_id,
                                                      const std::vector<CompletedPart>& parts) {
  const std::string body = CompleteMultipartBody(parts);
  Call call{.what = "CompleteMultipartUpload " + std::string(key),
            .method = bhttp::verb::post,
            .key = key,
            .body = AsBytes(body)};
  call.query = {{"uploadId", std::string(upload_id)}};
  call.idempotent = false;
  COFFRE_ASSIGN_OR_RETURN(const Answer answer, impl_->Execute(call));
  return ParseCompleteResult(call.what, answer.body);
}

Status S3Client::AbortMultipartUpload(std::string_view key, std::string_view upload_id) {
  Call call{.what = "AbortMultipartUpload " + std::string(key), .method = bhttp::verb::delete_, .key = key};
  call.query = {{"uploadId", std::string(upload_id)}};
  const Result<Answer> answer = impl_->Execute(call);
  return StatusOf(answer);
}

}  // namespace coffre::upstream
