// The hashing lane (src/service/hash_lane.h) and the object writer's hashes beside its sealing:
// same ETag and checksums as one pass in series, whatever the write sizes, and no thread or
// buffer outlives a writer that fails or is abandoned mid-object.

#include "service/hash_lane.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "coffre/crypto/checksum.h"
#include "coffre/crypto/hash.h"
#include "coffre/service/object_service.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"
#include "support/test_data.h"

namespace coffre::service {
namespace {

using test_support::Pattern;
using test_support::StatusIs;

namespace fs = std::filesystem;
using internal::HashLane;

TEST(HashLaneTest, RunsTheWorkInSubmissionOrder) {
  std::vector<uint8_t> seen;  // touched by the lane between Submit and Wait only
  HashLane lane([&](ByteView data) { seen.insert(seen.end(), data.begin(), data.end()); });
  lane.Wait();  // nothing submitted, no thread: returns at once
  Bytes a{1, 2, 3}, b{4, 5};
  lane.Submit(a);
  lane.Wait();
  lane.Submit(b);
  lane.Wait();
  lane.Wait();  // twice is harmless
  EXPECT_EQ(seen, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
}

TEST(HashLaneTest, DestructionFinishesTheBufferInFlight) {
  crypto::Md5 md5;
  Bytes data = Pattern(1 << 20, 3);
  {
    HashLane lane([&](ByteView d) { md5.Update(d); });
    lane.Submit(data);
  }  // no Wait(): the destructor lets the work finish, then joins
  EXPECT_EQ(md5.Final(), crypto::Md5::Digest(data));
}

// Lanes share the process's pool: however many uploads hash at once, no thread is made for them
// (the soak test checks that the daemon's thread count stays flat).
TEST(HashLaneTest, ManyLanesShareTheSameThreads) {
  (void)internal::SharedHashPool();
  auto threads = [] { return std::distance(fs::directory_iterator("/proc/self/task"), fs::directory_iterator{}); };
  const auto before = threads();
  Bytes data(256 * 1024, 7);
  std::vector<std::unique_ptr<HashLane>> lanes;
  std::vector<crypto::Md5> md5s(32);
  for (size_t i = 0; i < md5s.size(); ++i) {
    lanes.push_back(std::make_unique<HashLane>([&md5s, i](ByteView d) { md5s[i].Update(d); }));
    lanes.back()->Submit(data);
  }
  EXPECT_EQ(threads(), before);
  for (auto& lane : lanes) {
    lane->Wait();
  }
  const crypto::Md5Digest expected = [&] {
    crypto::Md5 one;
    one.Update(data);
    return one.Final();
  }();
  for (auto& m : md5s) {
    EXPECT_EQ(m.Final(), expected);
  }
}

TEST(HashLaneTest, WaitRethrowsWhatTheWorkThrew) {
  int calls = 0;
  HashLane lane([&](ByteView) {
    if (++calls == 1) throw std::runtime_error("boom");
  });
  Bytes data{1};
  lane.Submit(data);
  EXPECT_THROW(lane.Wait(), std::runtime_error);
  lane.Submit(data);  // the lane keeps working after an exception
  EXPECT_NO_THROW(lane.Wait());
  EXPECT_EQ(calls, 2);
}

class WriterHashTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("hashlane"));
    ServiceOptions opts;
    opts.segment_size = 4096;
    opts.garbage_grace_ms = 0;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    auto b = service_->CreateBucket(t->id, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  std::unique_ptr<ObjectWriter> Begin(const std::string& key) {
    std::set<crypto::ChecksumAlgorithm> all(std::begin(crypto::kAllChecksumAlgorithms),
                                            std::end(crypto::kAllChecksumAlgorithms));
    auto w = service_->BeginPut(bucket_, key, {}, all);
    EXPECT_OK(w);
    return w.ok() ? std::move(w).value() : nullptr;
  }

  std::unique_ptr<ObjectService> service_;
  catalog::Bucket bucket_;
};

TEST_F(WriterHashTest, EtagAndEveryChecksumMatchOnePassInSeries) {
  // Sizes around the segment boundaries, written in steps that straddle them differently.
  for (size_t size : {0, 4095, 4096, 4097, 2 * 4096, 2 * 4096 + 1, 37 * 4096 + 123}) {
    for (size_t step : {1000, 4096, 5000, 70000}) {
      Bytes data = Pattern(size, static_cast<uint32_t>(size + step));
      auto w = Begin("k");
      ASSERT_NE(w, nullptr);
      for (size_t off = 0; off < data.size(); off += step) {
        ASSERT_OK(w->Write(ByteView(data.data() + off, std::min(step, data.size() - off))));
      }
      CommitOptions opts;
      const auto md5 = crypto::Md5::Digest(data);
      opts.content_md5 = Bytes(md5.begin(), md5.end());
      for (auto alg : crypto::kAllChecksumAlgorithms) opts.expected_checksums[alg] = crypto::ComputeChecksum(alg, data);
      auto put = w->Commit(opts);
      ASSERT_OK(put) << size << "/" << step;
      EXPECT_EQ(put->etag, HexEncode(md5));
      for (auto alg : crypto::kAllChecksumAlgorithms) {
        EXPECT_EQ(put->checksums[alg], crypto::ComputeChecksum(alg, data)) << crypto::ChecksumAlgorithmName(alg);
      }
    }
  }
}

TEST_F(WriterHashTest, WrongDigestOfAMultiSegmentBodyIsRefused) {
  Bytes data = Pattern(10 * 4096 + 5, 9);
  auto w = Begin("bad");
  ASSERT_NE(w, nullptr);
  ASSERT_OK(w->Write(data));
  CommitOptions opts;
  auto md5 = crypto::Md5::Digest(data);
  md5[0] ^= 1;
  opts.content_md5 = Bytes(md5.begin(), md5.end());
  auto put = w->Commit(opts);
  ASSERT_THAT(put, StatusIs(Errc::kBadDigest));
}

TEST_F(WriterHashTest, AbandonedMidObjectLeavesNothingBehind) {
  // Destroyed while the lane may still be hashing the last full segment: no leak, no race
  // (the ASan and TSan builds run this), and no temporary file left.
  for (int i = 0; i < 20; ++i) {
    auto w = Begin("gone");
    ASSERT_NE(w, nullptr);
    Bytes data = Pattern(3 * 4096 + static_cast<size_t>(i), static_cast<uint32_t>(i));
    ASSERT_OK(w->Write(data));
  }
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

}  // namespace
}  // namespace coffre::service
