// The upstream blob store against a real upstream: the `coffre` daemon itself on 127.0.0.1
// (tests/support/coffre_daemon.h). Without COFFRE_BINARY the tests skip.

#include "coffre/storage/s3_blob_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/upstream/s3_client.h"
#include "support/coffre_daemon.h"
#include "support/fault_proxy.h"
#include "support/status_matchers.h"
#include "support/test_data.h"

namespace coffre::storage {
namespace {

using test_support::Pattern;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr char kBucket[] = "blobs";

class S3BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* binary = test_support::CoffreBinary();
    if (binary == nullptr) GTEST_SKIP() << "COFFRE_BINARY is not set";
    ASSERT_TRUE(daemon_.Start(binary));
    auto raw = upstream::S3Client::Create(daemon_.ClientOptions(kBucket));
    ASSERT_OK(raw);
    raw_ = std::move(raw).value();
    ASSERT_OK(raw_->CreateBucket());
    store_ = Open({.prefix = "coffre/", .part_size = 5 * kMiB});
  }

  // A store on its own client of the daemon's bucket; `host` replaces 127.0.0.1 in the endpoint.
  std::unique_ptr<BlobStore> Open(S3BlobStoreOptions options, const std::string& host = "") {
    upstream::S3ClientOptions client_options = daemon_.ClientOptions(kBucket);
    if (!host.empty()) {
      client_options.endpoint.replace(client_options.endpoint.find("127.0.0.1"), 9, host);
    }
    auto client = upstream::S3Client::Create(std::move(client_options));
    EXPECT_OK(client);
    if (!client.ok()) return nullptr;
    last_client_ = client->get();
    auto store = OpenS3BlobStore(std::move(client).value(), std::move(options));
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // A store whose client reaches the daemon through `proxy`, started here.
  std::unique_ptr<BlobStore> OpenThrough(test_support::FaultProxy& proxy, S3BlobStoreOptions options) {
    const std::string endpoint = daemon_.ClientOptions(kBucket).endpoint;
    const auto daemon_port = static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
    EXPECT_TRUE(proxy.Start(daemon_port));
    upstream::S3ClientOptions client_options = daemon_.ClientOptions(kBucket);
    client_options.endpoint = "http://127.0.0.1:" + std::to_string(proxy.port());
    auto client = upstream::S3Client::Create(std::move(client_options));
    EXPECT_OK(client);
    if (!client.ok()) return nullptr;
    last_client_ = client->get();
    auto proxied = OpenS3BlobStore(std::move(client).value(), std::move(options));
    EXPECT_OK(proxied);
    return proxied.ok() ? std::move(proxied).value() : nullptr;
  }

  // Every key of the bucket under `prefix`, as the upstream lists them.
  std::vector<std::string> UpstreamKeys(const std::string& prefix = "") {
    std::vector<std::string> keys;
    upstream::ListRequest request{.prefix = prefix};
    do {
      auto page = raw_->ListObjectsV2(request);
      EXPECT_OK(page);
      if (!page.ok()) break;
      for (const upstream::ListedObject& object : page->objects) keys.push_back(object.key);
      request.continuation_token = page->next_continuation_token;
    } while (!request.continuation_token.empty());
    return keys;
  }

  // Writes `data` as a new blob in pieces of `piece` bytes and commits it; returns its id.
  std::string Put(BlobStore& store, const Bytes& data, size_t piece = 100'003) {
    auto writer = store.CreateBlob(data.size());
    EXPECT_OK(writer);
    if (!writer.ok()) return {};
    for (size_t at = 0; at < data.size(); at += piece) {
      EXPECT_OK((*writer)->Append(std::span(data).subspan(at, std::min(piece, data.size() - at))));
    }
    EXPECT_EQ((*writer)->size(), data.size());
    EXPECT_OK((*writer)->Commit());
    return (*writer)->id();
  }

  // Waits (up to a minute, a bound for failure only) until `client` has counted `n` operations,
  // such as the abort a dropped writer leaves to the store's thread; returns the count.
  static uint64_t AwaitOperations(const upstream::S3Client& client, uint64_t n) {
    return AwaitCount([&] { return client.counters().operations.load(); }, n);
  }

  // The same for any count.
  static uint64_t AwaitCount(const std::function<uint64_t()>& count, uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return count();
  }

  Bytes ReadAll(const BlobStore& store, const std::string& id) {
    auto reader = store.Open(id);
    EXPECT_OK(reader);
    if (!reader.ok()) return {};
    Bytes out((*reader)->size());
    EXPECT_OK((*reader)->ReadAt(0, out));
    return out;
  }

  test_support::CoffreDaemon daemon_;
  std::unique_ptr<upstream::S3Client> raw_;  // looks at the bucket behind the store's back
  upstream::S3Client* last_client_ = nullptr;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(S3BlobStoreTest, SmallBlobRoundTripsUnderAnOpaqueKey) {
  const Bytes data = Pattern(1000);
  const std::string id = Put(*store_, data, 333);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{32}"))) << id;
  EXPECT_EQ(UpstreamKeys(), std::vector<std::string>{"coffre/" + id.substr(0, 4) + "/" + id});

  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  EXPECT_EQ((*reader)->size(), data.size());
  Bytes middle(100);
  ASSERT_OK((*reader)->ReadAt(450, middle));
  EXPECT_TRUE(std::equal(middle.begin(), middle.end(), data.begin() + 450));
  EXPECT_EQ(ReadAll(*store_, id), data);
  Bytes past(10);
  EXPECT_THAT((*reader)->ReadAt(995, past), StatusIs(StatusCode::kCorruption));
  // The upstream object holds the bytes and nothing else: no metadata of Coffre's.
  auto head = raw_->HeadObject("coffre/" + id.substr(0, 4) + "/" + id);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, data.size());
}

TEST_F(S3BlobStoreTest, EmptyBlobRoundTrips) {
  const std::string id = Put(*store_, Bytes());
  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  EXPECT_EQ((*reader)->size(), 0u);
  Bytes none;
  EXPECT_OK((*reader)->ReadAt(0, none));
  Bytes one(1);
  EXPECT_THAT((*reader)->ReadAt(0, one), StatusIs(StatusCode::kCorruption));
}

TEST_F(S3BlobStoreTest, BlobAboveSinglePutMaxIsStreamedInOnePut) {
  const Bytes data = Pattern(3 * kMiB + 17, 5);
  const uint64_t operations = last_client_->counters().operations.load();
  const std::string id = Put(*store_, data, 65'536 + 11);
  EXPECT_EQ(last_client_->counters().operations.load() - operations, 1u) << "one streamed PUT, no multipart upload";
  EXPECT_EQ(ReadAll(*store_, id), data);
  // Reads across the end of what Open prefetched (64 KiB).
  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  Bytes across(1000);
  ASSERT_OK((*reader)->ReadAt(65'536 - 500, across));
  EXPECT_TRUE(std::equal(across.begin(), across.end(), data.begin() + 65'536 - 500));
  Bytes far(4096);
  ASSERT_OK((*reader)->ReadAt(2 * kMiB + 3, far));
  EXPECT_TRUE(std::equal(far.begin(), far.end(), data.begin() + 2 * kMiB + 3));
}

TEST_F(S3BlobStoreTest, LargeBlobIsAMultipartUploadReadAcrossPartBoundaries) {
  const Bytes data = Pattern(11 * kMiB + 123, 9);
  const uint64_t operations = last_client_->counters().operations.load();
  const std::string id = Put(*store_, data, kMiB + 7);
  // CreateMultipartUpload, three streamed parts (5 MiB, 5 MiB, the rest), CompleteMultipartUpload.
  EXPECT_EQ(last_client_->counters().operations.load() - operations, 5u);
  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  ASSERT_EQ((*reader)->size(), data.size());
  for (const uint64_t boundary : {5 * kMiB, 10 * kMiB}) {
    Bytes around(2000);
    ASSERT_OK((*reader)->ReadAt(boundary - 1000, around));
    EXPECT_TRUE(std::equal(around.begin(), around.end(), data.begin() + static_cast<ptrdiff_t>(boundary - 1000)))
        << boundary;
  }
  Bytes tail(123);
  ASSERT_OK((*reader)->ReadAt(11 * kMiB, tail));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.end() - 123));
  EXPECT_EQ(ReadAll(*store_, id), data);
}

TEST_F(S3BlobStoreTest, WithoutStreamingPartsAreSentFromMemory) {
  // "localhost" is loopback for plain http, but not an address: the client refuses to stream to
  // it, and the store falls back to signed in-memory parts.
  std::unique_ptr<BlobStore> store = Open({.prefix = "fallback/", .part_size = 5 * kMiB}, "localhost");
  ASSERT_NE(store, nullptr);
  ASSERT_FALSE(last_client_->CanStream());
  const Bytes large = Pattern(6 * kMiB + 5, 3);
  const Bytes medium = Pattern(kMiB, 4);
  const std::string large_id = Put(*store, large, kMiB - 1);
  const std::string medium_id = Put(*store, medium);
  EXPECT_EQ(ReadAll(*store, large_id), large);
  EXPECT_EQ(ReadAll(*store, medium_id), medium);
  EXPECT_EQ(UpstreamKeys("fallback/").size(), 2u);
}

TEST_F(S3BlobStoreTest, AppendPastTheDeclaredSizeFailsAndLeavesNothing) {
  for (const uint64_t declared : {uint64_t{100}, 2 * kMiB, 6 * kMiB}) {
    std::string id;
    {
      auto writer = store_->CreateBlob(declared);
      ASSERT_OK(writer);
      id = (*writer)->id();
      const Bytes data = Pattern(static_cast<size_t>(declared) - 10);
      ASSERT_OK((*writer)->Append(data));
      EXPECT_THAT((*writer)->Append(Pattern(11)), StatusIs(StatusCode::kInvalidArgument, HasSubstr(id)));
      EXPECT_THAT((*writer)->Commit(), Not(test_support::IsOk())) << declared;
    }
    EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound)) << declared;
  }
  EXPECT_TRUE(UpstreamKeys().empty());
  auto listed = store_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
}

TEST_F(S3BlobStoreTest, ShortCommitFailsAndLeavesNothing) {
  for (const uint64_t declared : {uint64_t{100}, 2 * kMiB, 6 * kMiB}) {
    auto writer = store_->CreateBlob(declared);
    ASSERT_OK(writer);
    const std::string id = (*writer)->id();
    ASSERT_OK((*writer)->Append(Pattern(static_cast<size_t>(declared) - 1)));
    EXPECT_THAT((*writer)->Commit(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("declared"))) << declared;
    EXPECT_THAT((*writer)->Commit(), Not(test_support::IsOk()));
    EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound)) << declared;
  }
  EXPECT_TRUE(UpstreamKeys().empty());
}

uint64_t Errors(const upstream::ClientCounters& counters) {
  uint64_t errors = 0;
  for (const auto& count : counters.errors_by_code) errors += count.load();
  return errors;
}

TEST_F(S3BlobStoreTest, DroppedWriterLeavesNothing) {
  for (const uint64_t declared : {uint64_t{100}, 2 * kMiB, 11 * kMiB}) {
    std::string id;
    const uint64_t operations = last_client_->counters().operations.load();
    {
      auto writer = store_->CreateBlob(declared);
      ASSERT_OK(writer);
      id = (*writer)->id();
      // Into the second part for the multipart blob: its first part is already upstream.
      ASSERT_OK((*writer)->Append(Pattern(static_cast<size_t>(std::min(declared - 1, 6 * kMiB)))));
    }
    if (declared == 11 * kMiB) {
      // CreateMultipartUpload, part 1, part 2 (abandoned), then AbortMultipartUpload, which
      // succeeded: on the store's own thread, so that dropping the writer did not wait for it.
      EXPECT_EQ(AwaitOperations(*last_client_, operations + 4) - operations, 4u);
    }
    EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound)) << declared;
  }
  EXPECT_EQ(Errors(last_client_->counters()), 3u) << "only the three Opens failed";
  EXPECT_TRUE(UpstreamKeys().empty());
}

// Dropping a writer with a part awaiting its answer, which the proxy holds back for seconds, does
// not wait for the upstream: the answer and the abort after it come later, on the store's thread
// (a writer is often dropped on a network thread, which must never wait for the upstream).
TEST_F(S3BlobStoreTest, DroppingAWriterDoesNotWaitForTheUpstream) {
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  upstream::S3Client* const client = last_client_;
  std::string id;
  {
    auto writer = store->CreateBlob(11 * kMiB);
    ASSERT_OK(writer);
    id = (*writer)->id();
    ASSERT_OK((*writer)->Append(Pattern(6 * kMiB, 9)));  // part 1 sent, part 2 begun
    // Every answer from now on is held back far longer than dropping the writer takes.
    proxy.DelayAnswers(std::chrono::milliseconds(3000));
  }
  // Counted so far: CreateMultipartUpload, part 2 (abandoned as the writer went), and part 1 if its
  // answer came before the delay; not the abort, whose answer is held back.
  EXPECT_LT(client->counters().operations.load(), 4u) << "the writer's drop waited for the abort's answer";
  EXPECT_EQ(AwaitOperations(*client, 4), 4u) << "create, part 1, part 2 (abandoned), abort";
  EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(UpstreamKeys().empty());
}

TEST_F(S3BlobStoreTest, WritersAreAppendOnlyAndCommitOnce) {
  auto writer = store_->CreateBlob(10);
  ASSERT_OK(writer);
  EXPECT_THAT((*writer)->WriteAt(0, Pattern(4)), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK((*writer)->Append(Pattern(10)));
  ASSERT_OK((*writer)->Commit());
  EXPECT_THAT((*writer)->Commit(), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT((*writer)->Append(Pattern(1)), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(ReadAll(*store_, (*writer)->id()), Pattern(10));
}

TEST_F(S3BlobStoreTest, ObjectShorterThanWhenOpenedIsCorruption) {
  const Bytes data = Pattern(500'000);
  const std::string id = Put(*store_, data);
  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  // Something replaces the object behind the store's back with a shorter one.
  ASSERT_OK(raw_->PutObject("coffre/" + id.substr(0, 4) + "/" + id, std::span(data).first(200'000)));
  Bytes straddling(1000);
  EXPECT_THAT((*reader)->ReadAt(199'500, straddling), StatusIs(StatusCode::kCorruption, HasSubstr(id)));
  Bytes beyond(1000);
  EXPECT_THAT((*reader)->ReadAt(300'000, beyond), StatusIs(StatusCode::kCorruption, HasSubstr(id)));
  // A read before the new end fetches a window past it, which comes back short: refused too.
  Bytes within(1000);
  EXPECT_THAT((*reader)->ReadAt(100'000, within), StatusIs(StatusCode::kCorruption, HasSubstr("bytes of the")));
}

TEST_F(S3BlobStoreTest, RemovedBlobIsNotFound) {
  const std::string id = Put(*store_, Pattern(5000));
  ASSERT_OK(store_->Remove(id));
  EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound, HasSubstr(id)));
  EXPECT_OK(store_->Remove(id)) << "removing a blob that is gone is fine";
  EXPECT_TRUE(UpstreamKeys().empty());
}

TEST_F(S3BlobStoreTest, ListBlobsReturnsTheCommittedBlobsAndForeignKeysAsStrays) {
  std::unique_ptr<BlobStore> store = Open({.prefix = "coffre/", .part_size = 5 * kMiB, .list_page_size = 2});
  ASSERT_NE(store, nullptr);
  std::vector<std::pair<std::string, uint64_t>> expected;
  for (const size_t size : {size_t{0}, size_t{10}, size_t{300'000}, size_t{4321}}) {
    expected.emplace_back(Put(*store, Pattern(size)), size);
  }
  ASSERT_OK(raw_->PutObject("coffre/notes.txt", AsBytes("not a blob")));
  ASSERT_OK(raw_->PutObject("coffre/abcd/abcd", AsBytes("not a blob either")));
  const std::string misplaced = "ffff0123456789abcdef0123456789ab";
  ASSERT_OK(raw_->PutObject("coffre/0000/" + misplaced, AsBytes("in the wrong directory")));
  ASSERT_OK(raw_->PutObject("elsewhere/x", AsBytes("outside the prefix")));

  std::vector<std::string> strays;
  auto listed = store->ListBlobs(&strays);
  ASSERT_OK(listed);
  std::vector<std::pair<std::string, uint64_t>> got;
  const int64_t now = std::time(nullptr);
  for (const StoredFile& file : *listed) {
    got.emplace_back(file.name, file.size);
    EXPECT_NEAR(static_cast<double>(file.modified_unix), static_cast<double>(now), 120.0);
  }
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
  std::sort(strays.begin(), strays.end());
  EXPECT_EQ(strays, (std::vector<std::string>{"s3://blobs/coffre/0000/" + misplaced, "s3://blobs/coffre/abcd/abcd",
                                              "s3://blobs/coffre/notes.txt"}));
  EXPECT_THAT(store->RemoveStray(strays[0]), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(raw_->HeadObject("coffre/notes.txt")) << "a stray is not Coffre's to remove";
}

TEST_F(S3BlobStoreTest, KeysHoldOnlyThePrefixAndHexAndEachStoreKeepsToItsPrefix) {
  std::unique_ptr<BlobStore> other = Open({.prefix = "tenant-b/v1/", .part_size = 5 * kMiB});
  ASSERT_NE(other, nullptr);
  const std::string mine = Put(*store_, Pattern(700'000));
  const std::string theirs = Put(*other, Pattern(64));
  for (const std::string& key : UpstreamKeys()) {
    EXPECT_TRUE(std::regex_match(key, std::regex("(coffre/|tenant-b/v1/)[0-9a-f]{4}/[0-9a-f]{32}"))) << key;
  }
  EXPECT_EQ(UpstreamKeys("tenant-b/v1/"),
            std::vector<std::string>{"tenant-b/v1/" + theirs.substr(0, 4) + "/" + theirs});
  std::vector<std::string> strays;
  auto listed = store_->ListBlobs(&strays);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, mine);
  EXPECT_TRUE(strays.empty());
  EXPECT_THAT(store_->Open(theirs), StatusIs(StatusCode::kNotFound));
}

TEST_F(S3BlobStoreTest, SequentialReadsFetchGrowingWindowsNotOneRangePerRead) {
  const Bytes data = Pattern(12 * kMiB + 777, 31);
  const std::string id = Put(*store_, data, kMiB);
  auto reader = store_->Open(id);
  ASSERT_OK(reader);
  const uint64_t operations = last_client_->counters().operations.load();
  Bytes back(data.size());
  constexpr size_t kStep = 64 * 1024;  // a segment at a time, as the object service reads
  for (size_t at = 0; at < back.size(); at += kStep) {
    ASSERT_OK((*reader)->ReadAt(at, std::span<uint8_t>(back).subspan(at, std::min(kStep, back.size() - at))));
  }
  EXPECT_EQ(back, data);
  // 256 KiB, 512 KiB, 1, 2, then 4 MiB windows: a handful of GETs, not 200.
  EXPECT_LE(last_client_->counters().operations.load() - operations, 8u);

  // A jump backwards or ahead starts a small window again, and reads what is there.
  Bytes piece(1000);
  ASSERT_OK((*reader)->ReadAt(5 * kMiB + 3, piece));
  EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + 5 * kMiB + 3));
  ASSERT_OK((*reader)->ReadAt(100, piece));
  EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + 100));
  Bytes tail(777);
  ASSERT_OK((*reader)->ReadAt(12 * kMiB, tail));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.begin() + 12 * kMiB));
  Bytes past(2);
  EXPECT_THAT((*reader)->ReadAt(data.size() - 1, past), StatusIs(StatusCode::kCorruption));
}

TEST_F(S3BlobStoreTest, ABlobCanBeCreatedUnderAGivenId) {
  const std::string id = "00112233445566778899aabbccddeeff";
  const Bytes data = Pattern(300'000, 21);
  auto w = store_->Create(id, data.size());
  ASSERT_OK(w);
  EXPECT_EQ((*w)->id(), id);
  ASSERT_OK((*w)->Append(data));
  ASSERT_OK((*w)->Commit());
  auto r = store_->Open(id);
  ASSERT_OK(r);
  Bytes back(data.size());
  ASSERT_OK((*r)->ReadAt(0, back));
  EXPECT_EQ(back, data);
}

TEST_F(S3BlobStoreTest, RefusesWhatItCannotDo) {
  EXPECT_THAT(store_->CreateBlob(std::nullopt), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->CreateBlob(5 * kMiB * 10'001), StatusIs(StatusCode::kInvalidArgument, HasSubstr("parts")));
  EXPECT_THAT(store_->Create("00112233445566778899aabbccddeeff", std::nullopt),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("size")));
  EXPECT_THAT(store_->Create("../etc/passwd", 10), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Open("../etc/passwd"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Remove("NOT-HEX"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(store_->MaxPackedBlob(), 0u);
  auto removed = store_->RemoveTemporaries();
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 0u);
  auto temporaries = store_->ListTemporaries();
  ASSERT_OK(temporaries);
  EXPECT_TRUE(temporaries->empty());
  EXPECT_OK(store_->RemoveTemporary("anything"));
}

TEST_F(S3BlobStoreTest, BadOptionsAreRefused) {
  const auto refused = [&](S3BlobStoreOptions options) {
    auto client = upstream::S3Client::Create(daemon_.ClientOptions(kBucket));
    EXPECT_OK(client);
    auto store = OpenS3BlobStore(std::move(client).value(), std::move(options));
    return StatusOf(store);
  };
  EXPECT_THAT(refused({.part_size = 5 * kMiB - 1}), StatusIs(StatusCode::kInvalidArgument, HasSubstr("part_size")));
  EXPECT_THAT(refused({.part_size = (uint64_t{5} << 30) + 1}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(refused({.single_put_max = 6 * kMiB, .part_size = 5 * kMiB}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("single_put_max")));
  EXPECT_THAT(refused({.list_page_size = 0}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(refused({.list_page_size = 1001}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenS3BlobStore(nullptr), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(refused({.part_size = 5 * kMiB}));
}

TEST_F(S3BlobStoreTest, UnreachableUpstreamIsUnavailableNamingTheBlob) {
  upstream::S3ClientOptions options = daemon_.ClientOptions(kBucket);
  options.endpoint = "http://127.0.0.1:1";
  options.retry.max_attempts = 1;
  auto client = upstream::S3Client::Create(std::move(options));
  ASSERT_OK(client);
  auto store = OpenS3BlobStore(std::move(client).value());
  ASSERT_OK(store);
  const std::string id = "00112233445566778899aabbccddeeff";
  EXPECT_THAT((*store)->Open(id), StatusIs(StatusCode::kUnavailable, HasSubstr("blob " + id)));
  auto writer = (*store)->CreateBlob(3);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append(Pattern(3)));
  EXPECT_THAT((*writer)->Commit(), StatusIs(StatusCode::kUnavailable, HasSubstr((*writer)->id())));
}

// Parts go up while the ones before await their answers, which the proxy holds back: the blob
// round-trips byte for byte, and the next part was sent while one still awaited its answer.
TEST_F(S3BlobStoreTest, MultipartBlobRoundTripsWithSeveralPartsAwaitingTheirAnswers) {
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  // The delay only gives the overlap time to show; the test measures no time. Parts sent one
  // after another's answer would never have two requests in flight at once.
  proxy.DelayAnswers(std::chrono::milliseconds(1000));
  const Bytes data = Pattern(26 * kMiB + 99, 41);  // six parts, the last one short
  const std::string id = Put(*store, data, kMiB + 7);
  EXPECT_GE(proxy.max_in_flight(), 2u) << "a part went up while another awaited its answer";
  EXPECT_EQ(ReadAll(*store_, id), data);
  EXPECT_EQ(UpstreamKeys(), std::vector<std::string>{"coffre/" + id.substr(0, 4) + "/" + id});
}

// Four writers at once on a store with two slots for parts awaiting their answer: besides the one
// request each writer has on its own thread (a part streaming, or an answer it awaits itself),
// the upstream never has more than the two slots' requests in flight, where unbounded writers
// would have up to four each; and every blob round-trips.
TEST_F(S3BlobStoreTest, WritersShareTheStoresSlotsForPartsAwaitingAnswers) {
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store =
      OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB, .parts_awaiting_answer = 2});
  ASSERT_NE(store, nullptr);
  // As above, the delay gives requests time to pile up if they could; nothing is timed.
  proxy.DelayAnswers(std::chrono::milliseconds(300));
  constexpr int kWriters = 4;
  std::vector<Bytes> data;
  for (int i = 0; i < kWriters; ++i) data.push_back(Pattern(20 * kMiB + 17 * i, 60 + i));  // five parts
  std::vector<std::string> ids(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] { ids[i] = Put(*store, data[i], kMiB + 11); });
  }
  for (std::thread& writer : writers) writer.join();
  EXPECT_LE(proxy.max_in_flight(), uint64_t{kWriters + 2});
  for (int i = 0; i < kWriters; ++i) {
    ASSERT_FALSE(ids[i].empty());
    EXPECT_EQ(ReadAll(*store_, ids[i]), data[i]) << i;
  }
}

// With no slot, a writer awaits each part's answer before the next part goes: one request at a time.
TEST_F(S3BlobStoreTest, WithoutSlotsEachPartIsAnsweredBeforeTheNextGoes) {
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store =
      OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB, .parts_awaiting_answer = 0});
  ASSERT_NE(store, nullptr);
  proxy.DelayAnswers(std::chrono::milliseconds(200));
  const Bytes data = Pattern(16 * kMiB + 3, 70);
  const std::string id = Put(*store, data, kMiB + 5);
  EXPECT_EQ(proxy.max_in_flight(), 1u);
  EXPECT_EQ(ReadAll(*store_, id), data);
}

// A part cut short by the network, in the middle of the blob or at its very end (where only its
// answer, awaited in the background, fails), fails the writer: Commit fails, nothing is visible.
TEST_F(S3BlobStoreTest, APartFailingMidwayFailsCommitAndLeavesNothing) {
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  proxy.DelayAnswers(std::chrono::milliseconds(200));
  const Bytes data = Pattern(16 * kMiB + 5, 43);  // parts of 5, 5, 5 and 1 MiB
  for (const uint64_t cut : {7 * kMiB, data.size() - 100}) {
    std::string id;
    {
      auto writer = store->CreateBlob(data.size());
      ASSERT_OK(writer);
      id = (*writer)->id();
      // The request heads come before the bodies' bytes, so the cut falls a little before `cut`.
      proxy.CutAtRequestByte(cut);
      constexpr size_t kPiece = kMiB + 3;
      Status appended;
      for (size_t at = 0; at < data.size() && appended.ok(); at += kPiece) {
        appended = (*writer)->Append(std::span(data).subspan(at, std::min(kPiece, data.size() - at)));
      }
      const Status committed = (*writer)->Commit();
      EXPECT_THAT(committed, Not(test_support::IsOk())) << cut;
      EXPECT_THAT(committed.message(), HasSubstr(id));
      if (!appended.ok()) {
        EXPECT_EQ(committed.message(), appended.message()) << "the writer keeps its first error";
      }
    }
    EXPECT_THAT(store_->Open(id), StatusIs(StatusCode::kNotFound)) << cut;
  }
  EXPECT_TRUE(UpstreamKeys().empty());
}

// Reading a segment at a time across many windows, each answer held back a while: the windows
// after the one being read are fetched meanwhile, on connections of their own, and every byte is
// the blob's.
TEST_F(S3BlobStoreTest, SequentialReadsAcrossManyWindowsFetchAhead) {
  const Bytes data = Pattern(30 * kMiB + 4321, 47);
  const std::string id = Put(*store_, data, 3 * kMiB);
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  proxy.DelayAnswers(std::chrono::milliseconds(100));
  auto reader = store->Open(id);
  ASSERT_OK(reader);
  const uint64_t operations = last_client_->counters().operations.load();
  Bytes back(data.size());
  constexpr size_t kStep = 64 * 1024 + 16;  // a segment and its tag
  for (size_t at = 0; at < back.size(); at += kStep) {
    ASSERT_OK((*reader)->ReadAt(at, std::span<uint8_t>(back).subspan(at, std::min(kStep, back.size() - at))));
  }
  EXPECT_TRUE(back == data);
  // 256 KiB, 512 KiB, 1, 2, then 4 MiB windows, and nothing fetched twice.
  EXPECT_LE(last_client_->counters().operations.load() - operations, 12u);
  EXPECT_GE(proxy.max_in_flight(), 2u) << "windows were in flight together";
  EXPECT_EQ(Errors(last_client_->counters()), 0u);
}

// A window fetched ahead whose answer is cut short is never served: the read fetches it again.
TEST_F(S3BlobStoreTest, AWindowFetchedAheadAndCutShortIsFetchedAgain) {
  const Bytes data = Pattern(12 * kMiB + 11, 53);
  const std::string id = Put(*store_, data, 3 * kMiB);
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  auto reader = store->Open(id);
  ASSERT_OK(reader);
  Bytes back(data.size());
  constexpr size_t kStep = 64 * 1024;
  for (size_t at = 0; at < back.size(); at += kStep) {
    if (at == kMiB) {
      // The windows ahead are in flight by now; the cut falls in one of them, after its first bytes.
      proxy.CutAtAnswerByte(100'000);
    }
    ASSERT_OK((*reader)->ReadAt(at, std::span<uint8_t>(back).subspan(at, std::min(kStep, back.size() - at))));
  }
  EXPECT_TRUE(back == data);
  EXPECT_EQ(Errors(last_client_->counters()), 1u) << "the cut GET failed, and was not served";
}

// A reader dropped while windows are in flight stops them, and the store's thread waits for those
// still running: no crash, nothing left running once the store goes (the sanitizer builds run
// this too), and the store reads on.
TEST_F(S3BlobStoreTest, AReaderDroppedWhileReadingAheadStopsItsFetches) {
  const Bytes data = Pattern(20 * kMiB, 59);
  const std::string id = Put(*store_, data, 3 * kMiB);
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  for (const int delay_ms : {0, 300}) {
    proxy.DelayAnswers(std::chrono::milliseconds(delay_ms));
    for (const size_t read : {size_t{300'000}, 3 * kMiB}) {
      auto reader = store->Open(id);
      ASSERT_OK(reader);
      Bytes back(read);
      for (size_t at = 0; at < read; at += 64 * 1024) {
        ASSERT_OK((*reader)->ReadAt(at, std::span<uint8_t>(back).subspan(at, std::min<size_t>(64 * 1024, read - at))));
      }
      EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
    }
  }
  // A reader shared by threads, dropped by the last one while its windows are in flight.
  proxy.DelayAnswers(std::chrono::milliseconds(50));
  auto opened = store->Open(id);
  ASSERT_OK(opened);
  std::shared_ptr<BlobReader> shared = std::move(opened).value();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 2; ++t) {
    threads.emplace_back([shared, t, &data] {
      Bytes piece(64 * 1024);
      for (size_t at = t * piece.size(); at < 4 * kMiB; at += 2 * piece.size()) {
        EXPECT_OK(shared->ReadAt(at, piece));
        EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + static_cast<ptrdiff_t>(at)));
      }
    });
  }
  shared.reset();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ReadAll(*store, id), data);
}

// Dropping a reader whose window fetched ahead has its answer held back for seconds does not wait
// for the upstream: the GET ends later, on the store's thread (a reader is dropped on a network
// thread when a client goes away mid-GET, and that thread must never wait for the upstream).
TEST_F(S3BlobStoreTest, DroppingAReaderDoesNotWaitForTheUpstream) {
  const Bytes data = Pattern(4 * kMiB, 61);
  const std::string id = Put(*store_, data, 3 * kMiB);
  test_support::FaultProxy proxy;
  std::unique_ptr<BlobStore> store = OpenThrough(proxy, {.prefix = "coffre/", .part_size = 5 * kMiB});
  ASSERT_NE(store, nullptr);
  upstream::S3Client* const client = last_client_;
  {
    auto reader = store->Open(id);  // operation 1: the first 64 KiB
    ASSERT_OK(reader);
    // Every answer from now on is held back far longer than dropping the reader takes. The read
    // right after the head fetches its window (waiting out the delay), then starts the next
    // window ahead, whose answer the proxy holds back.
    proxy.DelayAnswers(std::chrono::milliseconds(3000));
    Bytes piece(64 * 1024);
    ASSERT_OK((*reader)->ReadAt(64 * 1024, piece));
    EXPECT_TRUE(std::equal(piece.begin(), piece.end(), data.begin() + 64 * 1024));
  }
  // The window ahead fails as Aborted once its answer comes and it sees it is no longer wanted.
  const auto stopped = [client] { return client->counters().Errors(StatusCode::kAborted); };
  EXPECT_EQ(stopped(), 0u) << "the reader's drop waited for the window ahead";
  EXPECT_EQ(AwaitCount(stopped, 1), 1u) << "the window ahead ended on the store's thread";
  EXPECT_EQ(Errors(client->counters()), 1u);
  proxy.DelayAnswers(std::chrono::milliseconds(0));
  EXPECT_EQ(ReadAll(*store, id), data);
}

}  // namespace
}  // namespace coffre::storage
