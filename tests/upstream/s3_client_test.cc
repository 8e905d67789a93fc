#include "coffre/upstream/s3_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coffre/common/ascii.h"
#include "coffre/common/bytes.h"
#include "coffre/http/uri.h"
#include "upstream/fake_s3_server.h"

namespace coffre::upstream {
namespace {

using test_support::FakeS3Server;
using test_support::kFakeAccessKey;
using test_support::kFakeSecret;
using test_support::ReceivedRequest;
using test_support::Reply;
using Action = Reply::Action;

S3ClientOptions OptionsFor(const FakeS3Server& server) {
  S3ClientOptions options;
  options.endpoint = server.endpoint();
  options.bucket = "blobs";
  options.access_key_id = std::string(kFakeAccessKey);
  options.secret_access_key = SecretBytes(AsBytes(kFakeSecret));
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.request_timeout = std::chrono::milliseconds(2000);
  options.retry.max_attempts = 3;
  options.retry.base_delay = std::chrono::milliseconds(1);
  options.retry.max_delay = std::chrono::milliseconds(5);
  return options;
}

std::unique_ptr<S3Client> ClientFor(S3ClientOptions options) {
  auto client = S3Client::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status().message();
  return client.ok() ? std::move(client).value() : nullptr;
}

std::unique_ptr<S3Client> ClientFor(const FakeS3Server& server) { return ClientFor(OptionsFor(server)); }

std::string PathOf(const ReceivedRequest& r) { return r.target.substr(0, r.target.find('?')); }

// A bucket in memory, enough of S3 for the client's operations: objects, ranges, listings and
// multipart uploads (parts concatenated on completion).
class MemoryBucket {
 public:
  Reply Handle(const ReceivedRequest& r) {
    std::lock_guard lock(mutex_);
    const std::string path = PathOf(r);
    const std::string query = r.target.find('?') == std::string::npos ? "" : r.target.substr(r.target.find('?') + 1);
    if (path == "/blobs" && r.method == "GET") return List();
    if (path == "/blobs" && r.method == "HEAD") return Reply{};
    const std::string key = http::PercentDecode(path.substr(std::string("/blobs/").size())).value();
    if (r.method == "POST" && query == "uploads=")
      return Xml(
          "<InitiateMultipartUploadResult><UploadId>up-1</UploadId>"
          "</InitiateMultipartUploadResult>");
    if (r.method == "PUT" && query.starts_with("partNumber=")) return StorePart(query, r.body);
    if (r.method == "POST" && query.starts_with("uploadId=")) return Complete(key);
    if (r.method == "DELETE" && query.starts_with("uploadId=")) return Empty(204);
    if (r.method == "PUT") {
      objects_[key] = r.body;
      return Etagged("\"etag-" + key + "\"");
    }
    if (r.method == "DELETE") {
      objects_.erase(key);
      return Empty(204);
    }
    const auto it = objects_.find(key);
    if (it == objects_.end()) return Reply::Error(404, "NoSuchKey", "The specified key does not exist.");
    return Get(it->second, r.Header("range"), r.method == "HEAD");
  }

  std::map<std::string, std::string> objects() {
    std::lock_guard lock(mutex_);
    return objects_;
  }

 private:
  static Reply Empty(unsigned status) {
    Reply r;
    r.status = status;
    return r;
  }
  static Reply Etagged(std::string etag) {
    Reply r;
    r.headers = {{"ETag", std::move(etag)}};
    return r;
  }
  static Reply Xml(std::string body) {
    Reply r;
    r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + std::move(body);
    return r;
  }

  static Reply Get(const std::string& data, const std::string& range, bool head) {
    Reply r;
    r.headers = {{"ETag", "\"e\""}};
    if (range.empty() || head) {
      r.body = data;
      return r;
    }
    const size_t dash = range.find('-');
    const uint64_t first = std::stoull(range.substr(6, dash - 6));
    uint64_t last = dash + 1 < range.size() ? std::stoull(range.substr(dash + 1)) : data.size() - 1;
    if (first >= data.size()) return Reply::Error(416, "InvalidRange", "The requested range is not satisfiable");
    last = std::min<uint64_t>(last, data.size() - 1);
    r.status = 206;
    r.body = data.substr(first, last - first + 1);
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                std::to_string(data.size()));
    return r;
  }

  Reply List() {
    std::string body = "<ListBucketResult>";
    for (const auto& [key, data] : objects_) {
      body += "<Contents><Key>" + key + "</Key><Size>" + std::to_string(data.size()) +
              "</Size><LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>";
    }
    body += "<IsTruncated>false</IsTruncated></ListBucketResult>";
    return Xml(body);
  }

  Reply StorePart(const std::string& query, const std::string& body) {
    const int number = std::stoi(query.substr(std::string("partNumber=").size()));
    parts_[number] = body;
    return Etagged("\"part-" + std::to_string(number) + "\"");
  }

  Reply Complete(const std::string& key) {
    std::string data;
    for (const auto& [number, part] : parts_) data += part;
    objects_[key] = data;
    parts_.clear();
    return Xml("<CompleteMultipartUploadResult><ETag>\"multi\"</ETag></CompleteMultipartUploadResult>");
  }

  std::mutex mutex_;
  std::map<std::string, std::string> objects_;
  std::map<int, std::string> parts_;
};

Result<std::string> GetAll(S3Client& client, std::string_view key, std::optional<ByteRange> range = {}) {
  std::string out;
  auto info = client.GetObject(
      key,
      [&](ByteView piece) {
        out.append(AsChars(piece));
        return Status::Ok();
      },
      range);
  if (!info.ok()) return info.status();
  return out;
}

TEST(S3Client, ObjectRoundTripIsSignedAndVerified) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  auto client = ClientFor(server);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->HeadBucket().ok());
  auto etag = client->PutObject("dir/a b+c", AsBytes("hello upstream"));
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  EXPECT_EQ(*etag, "\"etag-dir/a b+c\"");
  EXPECT_EQ(GetAll(*client, "dir/a b+c").value(), "hello upstream");
  auto head = client->HeadObject("dir/a b+c");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->size, 14u);
  EXPECT_EQ(head->etag, "\"e\"");
  EXPECT_TRUE(client->DeleteObject("dir/a b+c").ok());
  EXPECT_EQ(client->HeadObject("dir/a b+c").status().code(), StatusCode::kNotFound);
  for (const ReceivedRequest& r : server.requests()) {
    EXPECT_EQ(r.auth_error, "") << r.method << " " << r.target;
  }
  // One keep-alive connection served the whole sequence.
  EXPECT_EQ(server.connections(), 1);
  const auto requests = server.requests();
  EXPECT_EQ(requests[1].target, "/blobs/dir/a%20b%2Bc");
  EXPECT_NE(requests[1].Header("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
}

TEST(S3Client, RangedGetsStreamTheirBytes) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  auto client = ClientFor(server);
  // Larger than the client's read piece, so that the body reaches the sink in several.
  std::string data(600'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(client->PutObject("big", AsBytes(data)).ok());
  EXPECT_EQ(GetAll(*client, "big", ByteRange{.first = 10, .last = 19}).value(), data.substr(10, 10));
  EXPECT_EQ(GetAll(*client, "big", ByteRange{.first = 150'000}).value(), data.substr(150'000));
  std::string whole;
  size_t pieces = 0;
  auto info = client->GetObject("big", [&](ByteView piece) {
    ++pieces;
    whole.append(AsChars(piece));
    return Status::Ok();
  });
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(whole, data);
  EXPECT_GT(pieces, 1u);
  auto ranged = client->GetObject(
      "big", [](ByteView) { return Status::Ok(); }, ByteRange{.first = 5, .last = 6});
  ASSERT_TRUE(ranged.ok());
  EXPECT_EQ(ranged->size, data.size()) << "a ranged GET reports the whole object's size";
  EXPECT_EQ(GetAll(*client, "big", ByteRange{.first = 700'000}).status().code(), StatusCode::kOutOfRange);
}

TEST(S3Client, ListingAndMultipart) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  auto client = ClientFor(server);
  auto upload = client->CreateMultipartUpload("m");
  ASSERT_TRUE(upload.ok()) << upload.status().message();
  EXPECT_EQ(*upload, "up-1");
  auto p1 = client->UploadPart("m", *upload, 1, AsBytes("first-"));
  auto p2 = client->UploadPart("m", *upload, 2, AsBytes("second"));
  ASSERT_TRUE(p1.ok() && p2.ok());
  auto done = client->CompleteMultipartUpload("m", *upload, {{1, *p1}, {2, *p2}});
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(*done, "\"multi\"");
  EXPECT_EQ(bucket.objects()["m"], "first-second");
  EXPECT_TRUE(client->AbortMultipartUpload("m", "up-2").ok());
  auto page = client->ListObjectsV2({.prefix = "m", .max_keys = 10});
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "m");
  EXPECT_EQ(page->objects[0].size, 12u);
  EXPECT_TRUE(page->next_continuation_token.empty());
  for (const ReceivedRequest& r : server.requests()) {
    EXPECT_EQ(r.auth_error, "") << r.method << " " << r.target;
  }
  const auto requests = server.requests();
  const auto complete = std::find_if(requests.begin(), requests.end(), [](const auto& r) {
    return r.method == "POST" && r.target.find("uploadId") != std::string::npos;
  });
  ASSERT_NE(complete, requests.end());
  EXPECT_NE(complete->body.find("<PartNumber>2</PartNumber><ETag>&quot;part-2&quot;</ETag>"), std::string::npos)
      << complete->body;
  EXPECT_EQ(requests.back().target, "/blobs?list-type=2&max-keys=10&prefix=m");
}

TEST(S3Client, StreamedPutSendsTheDeclaredLength) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  auto client = ClientFor(server);
  const std::string data(700'000, 'z');
  size_t offset = 0;
  auto etag = client->PutObject("s", data.size(), [&](std::span<uint8_t> out) -> Result<size_t> {
    const size_t n = std::min(out.size(), data.size() - offset);
    std::copy_n(data.data() + offset, n, out.data());
    offset += n;
    return n;
  });
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  EXPECT_EQ(bucket.objects()["s"], data);
  EXPECT_EQ(server.requests().back().Header("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  // A source that dries up early fails the request rather than leaving the upload hanging.
  auto short_source = client->PutObject("t", 10, [](std::span<uint8_t>) -> Result<size_t> { return size_t{0}; });
  EXPECT_EQ(short_source.status().code(), StatusCode::kInvalidArgument);
}

// What goes upstream besides the key and the body: only what signing and HTTP need, so an
// upstream learns nothing of a blob from its request (no metadata, content type or user agent).
TEST(S3Client, UploadsSendOnlyTheHeadersSigningNeeds) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  auto client = ClientFor(server);
  ASSERT_TRUE(client->PutObject("signed", AsBytes("in memory")).ok());
  auto stream = client->BeginPutObject("streamed", 3);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  ASSERT_TRUE(stream->Write(AsBytes("abc")).ok());
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(server.requests().size(), 2u);
  for (const ReceivedRequest& r : server.requests()) {
    std::vector<std::string> names;
    for (const auto& [name, value] : r.headers) names.push_back(ToLower(name));
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"authorization", "content-length", "host", "x-amz-content-sha256",
                                               "x-amz-date"}))
        << r.target;
    EXPECT_EQ(r.auth_error, "") << r.target;
  }
  EXPECT_EQ(bucket.objects()["streamed"], "abc");
}

TEST(S3Client, ErrorsMapToStatusesWithTheUpstreamCode) {
  FakeS3Server server([](const ReceivedRequest& r) {
    if (r.target.ends_with("/denied")) return Reply::Error(403, "AccessDenied", "Access Denied");
    if (r.target.ends_with("/busy")) return Reply::Error(409, "OperationAborted", "try again");
    return Reply::Error(404, "NoSuchKey", "The specified key does not exist.");
  });
  auto client = ClientFor(server);
  Status missing = GetAll(*client, "missing").status();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("NoSuchKey: The specified key does not exist."), std::string::npos)
      << missing.message();
  Status denied = client->PutObject("denied", AsBytes("x")).status();
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("AccessDenied"), std::string::npos);
  EXPECT_EQ(client->DeleteObject("busy").code(), StatusCode::kAborted);
  EXPECT_EQ(server.requests().size(), 3u) << "client errors are not retried";
}

TEST(S3Client, WrongSecretIsPermissionDeniedAndNeverQuoted) {
  FakeS3Server server([](const ReceivedRequest&) { return Reply{}; });
  S3ClientOptions options = OptionsFor(server);
  options.secret_access_key = SecretBytes(AsBytes("not-the-secret-at-all-0123456789"));
  auto client = ClientFor(std::move(options));
  Status status = client->PutObject("k", AsBytes("x")).status();
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_EQ(status.message().find("not-the-secret"), std::string::npos);
}

TEST(S3Client, TransientErrorsAreRetriedWithinTheLimit) {
  std::atomic<int> calls{0};
  FakeS3Server server([&](const ReceivedRequest&) {
    const int n = calls.fetch_add(1);
    if (n == 0) return Reply::Error(503, "SlowDown", "Please reduce your request rate.");
    if (n == 1) return Reply::Misbehave(Action::kReset);
    if (n == 2) return Reply::Error(500, "InternalError", "oops");
    return Reply{};
  });
  S3ClientOptions options = OptionsFor(server);
  options.retry.max_attempts = 4;
  auto client = ClientFor(std::move(options));
  EXPECT_TRUE(client->PutObject("k", AsBytes("payload")).ok());
  EXPECT_EQ(calls.load(), 4);
  EXPECT_EQ(client->counters().retries.load(), 3u);
  EXPECT_EQ(client->counters().attempts.load(), 4u);
  for (const ReceivedRequest& r : server.requests()) EXPECT_EQ(r.body, "payload");
}

TEST(S3Client, RetriesStopAtMaxAttempts) {
  FakeS3Server server(
      [](const ReceivedRequest&) { return Reply::Error(503, "SlowDown", "Please reduce your request rate."); });
  auto client = ClientFor(server);
  Status status = client->DeleteObject("k");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("SlowDown"), std::string::npos);
  EXPECT_NE(status.message().find("after 3 attempts"), std::string::npos) << status.message();
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(client->counters().Errors(StatusCode::kUnavailable), 1u);
}

TEST(S3Client, StalledUpstreamTimesOutWithinTheTotalDeadline) {
  FakeS3Server server(
      [](const ReceivedRequest&) { return Reply::Misbehave(Action::kStall, std::chrono::milliseconds(1500)); });
  S3ClientOptions options = OptionsFor(server);
  options.request_timeout = std::chrono::milliseconds(200);
  options.retry.max_attempts = 10;
  options.retry.total_deadline = std::chrono::milliseconds(700);
  auto client = ClientFor(std::move(options));
  Status status = client->HeadObject("k").status();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("timed out"), std::string::npos) << status.message();
  // Each attempt waits its 200 ms: at most 4 fit in the 700 ms deadline (fewer on a slow
  // machine), where the attempts alone would allow 10.
  EXPECT_LE(server.requests().size(), 4u);
}

TEST(S3Client, StreamedBodyIsNotRetriedOnceSent) {
  FakeS3Server server([](const ReceivedRequest&) { return Reply::Misbehave(Action::kReset); });
  auto client = ClientFor(server);
  auto etag = client->PutObject("s", 4, [](std::span<uint8_t> out) -> Result<size_t> {
    std::fill(out.begin(), out.end(), 'x');
    return out.size();
  });
  EXPECT_EQ(etag.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(S3Client, CompleteMultipartIsNotRetriedOnceSent) {
  FakeS3Server server([](const ReceivedRequest&) { return Reply::Error(503, "SlowDown"); });
  auto client = ClientFor(server);
  EXPECT_EQ(client->CompleteMultipartUpload("k", "u", {{1, "\"a\""}}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(S3Client, GetIsRetriedOnlyBeforeTheFirstByte) {
  std::atomic<int> calls{0};
  FakeS3Server server([&](const ReceivedRequest&) {
    Reply reply;
    reply.body = std::string(1000, 'g');
    if (calls.fetch_add(1) == 0) reply.action = Action::kTruncateBody;
    return reply;
  });
  auto client = ClientFor(server);
  std::string received;
  auto cut = client->GetObject("k", [&](ByteView piece) {
    received.append(AsChars(piece));
    return Status::Ok();
  });
  ASSERT_FALSE(cut.ok()) << "received " << received.size();
  EXPECT_EQ(cut.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(received.size(), 500u);
  EXPECT_EQ(calls.load(), 1);
  // Before any byte reached the sink, a reset is retried.
  std::atomic<int> resets{0};
  FakeS3Server flaky([&](const ReceivedRequest&) {
    if (resets.fetch_add(1) == 0) return Reply::Misbehave(Action::kReset);
    Reply reply;
    reply.body = "fine";
    return reply;
  });
  auto flaky_client = ClientFor(flaky);
  auto fine = GetAll(*flaky_client, "k");
  ASSERT_TRUE(fine.ok()) << fine.status().message();
  EXPECT_EQ(*fine, "fine");
}

TEST(S3Client, ServesManyThreadsAtOnce) {
  MemoryBucket bucket;
  FakeS3Server server([&](const ReceivedRequest& r) { return bucket.Handle(r); });
  S3ClientOptions options = OptionsFor(server);
  options.max_idle_connections = 4;
  auto client = ClientFor(std::move(options));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        if (!client->PutObject(key, AsBytes(key)).ok() || GetAll(*client, key).value() != key) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bucket.objects().size(), 160u);
  EXPECT_LE(server.connections(), 8 + 8) << "connections are pooled, not opened per request";
  EXPECT_EQ(client->counters().operations.load(), 320u);
}

TEST(S3Client, PlainHttpToARemoteHostIsRefused) {
  S3ClientOptions options;
  options.endpoint = "http://s3.example.net";
  options.bucket = "b";
  auto refused = S3Client::Create(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("allow_plaintext"), std::string::npos);
  options.allow_plaintext = true;
  auto allowed = S3Client::Create(options);
  ASSERT_TRUE(allowed.ok());
  Status streamed =
      (*allowed)->PutObject("k", 1, [](std::span<uint8_t>) -> Result<size_t> { return size_t{1}; }).status();
  EXPECT_EQ(streamed.code(), StatusCode::kFailedPrecondition) << "a streamed body would cross the network unsigned";
  EXPECT_FALSE((*allowed)->CanStream());
  EXPECT_EQ((*allowed)->BeginUploadPart("k", "u", 1, 1).status().code(), StatusCode::kFailedPrecondition);
}

TEST(S3Client, UnreachableUpstreamIsUnavailable) {
  uint16_t port = 0;
  {
    FakeS3Server closed([](const ReceivedRequest&) { return Reply{}; });
    port = closed.port();
  }
  S3ClientOptions options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(port);
  options.bucket = "b";
  options.retry.max_attempts = 2;
  options.retry.base_delay = std::chrono::milliseconds(1);
  auto client = S3Client::Create(options);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->HeadBucket().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*client)->counters().attempts.load(), 2u);
  // Beginning a stream is retried alike: no byte of its body has been sent.
  const Status stream = (*client)->BeginPutObject("k", 10).status();
  EXPECT_EQ(stream.code(), StatusCode::kUnavailable);
  EXPECT_NE(stream.message().find("after 2 attempts"), std::string::npos) << stream.message();
  EXPECT_EQ((*client)->counters().attempts.load(), 4u);
}

}  // namespace
}  // namespace coffre::upstream
