// The client against a real upstream: the `coffre` daemon itself, started on 127.0.0.1 in a
// temporary data directory (tests/support/coffre_daemon.h). Without COFFRE_BINARY the tests skip.

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "coffre/common/bytes.h"
#include "coffre/upstream/s3_client.h"
#include "support/coffre_daemon.h"

namespace coffre::upstream {
namespace {

class CoffreAsUpstream : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* binary = test_support::CoffreBinary();
    if (binary == nullptr) GTEST_SKIP() << "COFFRE_BINARY is not set";
    ASSERT_TRUE(daemon_.Start(binary));
    auto created = S3Client::Create(daemon_.ClientOptions("upstream-blobs"));
    ASSERT_TRUE(created.ok()) << created.status().message();
    client_ = std::move(created).value();
    ASSERT_TRUE(client_->CreateBucket().ok());
  }

  // The keys under `prefix`, in order.
  std::vector<std::string> Keys(const std::string& prefix) {
    auto page = client_->ListObjectsV2({.prefix = prefix});
    EXPECT_TRUE(page.ok()) << page.status().message();
    std::vector<std::string> keys;
    if (page.ok()) {
      for (const ListedObject& object : page->objects) keys.push_back(object.key);
    }
    return keys;
  }

  std::string GetAll(const std::string& key) {
    std::string got;
    auto info = client_->GetObject(key, [&](ByteView piece) {
      got.append(AsChars(piece));
      return Status::Ok();
    });
    EXPECT_TRUE(info.ok()) << info.status().message();
    return got;
  }

  test_support::CoffreDaemon daemon_;
  std::unique_ptr<S3Client> client_;
};

TEST_F(CoffreAsUpstream, EveryOperationAgainstTheRealDaemon) {
  S3Client& client = *client_;
  std::string data(300'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13 + 1);
  auto etag = client.PutObject("blobs/ab/cd 1", AsBytes(data));
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  auto head = client.HeadObject("blobs/ab/cd 1");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->size, data.size());
  EXPECT_EQ(head->etag, *etag);

  std::string got;
  auto info = client.GetObject(
      "blobs/ab/cd 1",
      [&](ByteView piece) {
        got.append(AsChars(piece));
        return Status::Ok();
      },
      ByteRange{.first = 1000, .last = 200'999});
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, data.size());
  EXPECT_TRUE(got == data.substr(1000, 200'000));

  size_t offset = 0;
  auto streamed = client.PutObject("blobs/streamed", data.size(), [&](std::span<uint8_t> out) -> Result<size_t> {
    const size_t n = std::min(out.size(), data.size() - offset);
    std::copy_n(data.data() + offset, n, out.data());
    offset += n;
    return n;
  });
  ASSERT_TRUE(streamed.ok()) << streamed.status().message();

  auto upload = client.CreateMultipartUpload("blobs/multi");
  ASSERT_TRUE(upload.ok()) << upload.status().message();
  const std::string part1(5 * 1024 * 1024, 'p');
  auto e1 = client.UploadPart("blobs/multi", *upload, 1, AsBytes(part1));
  auto e2 = client.UploadPart("blobs/multi", *upload, 2, AsBytes("tail"));
  ASSERT_TRUE(e1.ok() && e2.ok()) << e1.status().message() << e2.status().message();
  auto done = client.CompleteMultipartUpload("blobs/multi", *upload, {{1, *e1}, {2, *e2}});
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(client.HeadObject("blobs/multi")->size, part1.size() + 4);
  auto aborted = client.CreateMultipartUpload("blobs/abandoned");
  ASSERT_TRUE(aborted.ok());
  EXPECT_TRUE(client.AbortMultipartUpload("blobs/abandoned", *aborted).ok());

  auto page = client.ListObjectsV2({.prefix = "blobs/", .max_keys = 2});
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "blobs/ab/cd 1");
  EXPECT_EQ(page->objects[0].size, data.size());
  EXPECT_GT(page->objects[0].last_modified, 0);
  ASSERT_FALSE(page->next_continuation_token.empty());
  auto rest = client.ListObjectsV2({.prefix = "blobs/", .continuation_token = page->next_continuation_token});
  ASSERT_TRUE(rest.ok()) << rest.status().message();
  ASSERT_EQ(rest->objects.size(), 1u);
  EXPECT_EQ(rest->objects[0].key, "blobs/streamed");

  EXPECT_TRUE(client.DeleteObject("blobs/ab/cd 1").ok());
  const Status gone = client.HeadObject("blobs/ab/cd 1").status();
  EXPECT_EQ(gone.code(), StatusCode::kNotFound) << gone.message();
  const Status missing = client.GetObject("nope", [](ByteView) { return Status::Ok(); }).status();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("NoSuchKey"), std::string::npos) << missing.message();
  EXPECT_EQ(client.counters().retries.load(), 0u);
}

std::string Pattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 7 + i / 251);
  return data;
}

TEST_F(CoffreAsUpstream, StreamOfTheExactLengthIsStoredInPieces) {
  ASSERT_TRUE(client_->CanStream()) << "a loopback address may stream";
  const std::string data = Pattern(700'001);
  auto stream = client_->BeginPutObject("streams/exact", data.size());
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  EXPECT_EQ(stream->remaining(), data.size());
  for (size_t at = 0; at < data.size(); at += 65'537) {
    const std::string_view piece = std::string_view(data).substr(at, 65'537);
    ASSERT_TRUE(stream->Write(AsBytes(piece)).ok());
  }
  EXPECT_EQ(stream->remaining(), 0u);
  auto etag = stream->Finish();
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  EXPECT_FALSE(etag->empty());
  EXPECT_EQ(client_->HeadObject("streams/exact")->etag, *etag);
  EXPECT_TRUE(GetAll("streams/exact") == data);
  EXPECT_EQ(stream->Finish().status().code(), StatusCode::kFailedPrecondition) << "once only";
  // The connection went back to the pool: the next request reuses it.
  const uint64_t opened = client_->counters().connections_opened.load();
  ASSERT_TRUE(client_->HeadObject("streams/exact").ok());
  EXPECT_EQ(client_->counters().connections_opened.load(), opened);
}

TEST_F(CoffreAsUpstream, StreamRefusesMoreBytesThanDeclaredAndStoresNothing) {
  auto stream = client_->BeginPutObject("streams/long", 10);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  ASSERT_TRUE(stream->Write(AsBytes("0123456")).ok());
  const Status too_many = stream->Write(AsBytes("789A"));
  EXPECT_EQ(too_many.code(), StatusCode::kInvalidArgument) << too_many.message();
  EXPECT_EQ(stream->remaining(), 3u) << "nothing of the refused piece was sent";
  EXPECT_EQ(stream->Write(AsBytes("789")).code(), StatusCode::kInvalidArgument) << "the stream has ended";
  EXPECT_EQ(stream->Finish().status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->HeadObject("streams/long").status().code(), StatusCode::kNotFound);
}

TEST_F(CoffreAsUpstream, StreamFinishedShortFailsAndStoresNothing) {
  auto stream = client_->BeginPutObject("streams/short", 100'000);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  ASSERT_TRUE(stream->Write(AsBytes(Pattern(60'000))).ok());
  const Result<std::string> finished = stream->Finish();
  EXPECT_EQ(finished.status().code(), StatusCode::kInvalidArgument) << finished.status().message();
  EXPECT_NE(finished.status().message().find("60000 bytes of the 100000"), std::string::npos)
      << finished.status().message();
  EXPECT_EQ(client_->HeadObject("streams/short").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Keys("streams/").empty());
}

TEST_F(CoffreAsUpstream, AbandonedStreamStoresNothingAndLeavesThePoolUsable) {
  const uint64_t opened = client_->counters().connections_opened.load();
  {
    auto stream = client_->BeginPutObject("streams/abandoned", 50'000);
    ASSERT_TRUE(stream.ok()) << stream.status().message();
    ASSERT_TRUE(stream->Write(AsBytes(Pattern(20'000))).ok());
    // A moved-from stream is inert; the moved-to one is abandoned at the end of the scope.
    UploadStream moved = std::move(stream).value();
    EXPECT_EQ(moved.remaining(), 30'000u);
  }
  EXPECT_EQ(client_->HeadObject("streams/abandoned").status().code(), StatusCode::kNotFound);
  // The stream took the one pooled connection (CreateBucket's) and closed it: the HEAD needed a
  // new one, which then served the rest.
  EXPECT_EQ(client_->counters().connections_opened.load(), opened + 1);
  EXPECT_TRUE(client_->PutObject("streams/after", AsBytes("still fine")).ok());
  EXPECT_EQ(GetAll("streams/after"), "still fine");
  EXPECT_EQ(Keys("streams/"), std::vector<std::string>{"streams/after"});
}

TEST_F(CoffreAsUpstream, StreamWithAWrongSecretIsPermissionDenied) {
  S3ClientOptions options = daemon_.ClientOptions("upstream-blobs");
  options.secret_access_key = SecretBytes(AsBytes("not-the-secret-at-all-0123456789"));
  auto created = S3Client::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status().message();
  const std::string data = Pattern(8 * 1024 * 1024);
  auto stream = (*created)->BeginPutObject("streams/denied", data.size());
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  Status status;
  for (size_t at = 0; at < data.size() && status.ok(); at += 256 * 1024) {
    status = stream->Write(AsBytes(std::string_view(data).substr(at, 256 * 1024)));
  }
  if (status.ok()) status = stream->Finish().status();
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << status.message();
  EXPECT_EQ(status.message().find("not-the-secret"), std::string::npos);
  EXPECT_EQ(client_->HeadObject("streams/denied").status().code(), StatusCode::kNotFound);
}

TEST_F(CoffreAsUpstream, PartsAreStreamedToo) {
  auto upload = client_->CreateMultipartUpload("streams/multi");
  ASSERT_TRUE(upload.ok()) << upload.status().message();
  const std::string part1 = Pattern(5 * 1024 * 1024);
  auto stream = client_->BeginUploadPart("streams/multi", *upload, 1, part1.size());
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  for (size_t at = 0; at < part1.size(); at += 1'000'000) {
    ASSERT_TRUE(stream->Write(AsBytes(std::string_view(part1).substr(at, 1'000'000))).ok());
  }
  auto e1 = stream->Finish();
  ASSERT_TRUE(e1.ok()) << e1.status().message();
  auto tail = client_->BeginUploadPart("streams/multi", *upload, 2, 4);
  ASSERT_TRUE(tail.ok()) << tail.status().message();
  ASSERT_TRUE(tail->Write(AsBytes("tail")).ok());
  auto e2 = tail->Finish();
  ASSERT_TRUE(e2.ok()) << e2.status().message();
  ASSERT_TRUE(client_->CompleteMultipartUpload("streams/multi", *upload, {{1, *e1}, {2, *e2}}).ok());
  EXPECT_TRUE(GetAll("streams/multi") == part1 + "tail");
}

}  // namespace
}  // namespace coffre::upstream
