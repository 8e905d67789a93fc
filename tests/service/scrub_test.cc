// The scrub walk (coffre/service/scrub.h): every damaged object is reported once, with one audit
// record of the integrity failure; a clean store reports nothing; the walk paces and stops.

#include "coffre/service/scrub.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coffre/crypto/blob_format.h"
#include "support/fake_recorder.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

using test_support::StatusIs;

namespace fs = std::filesystem;

using test_support::FakeRecorder;

std::vector<audit::Event> IntegrityFailures(FakeRecorder& recorder) {
  std::vector<audit::Event> out;
  for (const auto& e : recorder.events()) {
    if (e.outcome == audit::Outcome::kIntegrityFailure) {
      out.push_back(e);
    }
  }
  return out;
}

class ScrubTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("scrub"));
    ServiceOptions opts;
    opts.segment_size = crypto::kMinSegmentSize;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    service_->set_audit(&recorder_);
    scrubber_ = std::make_unique<Scrubber>(*service_, *catalog_, *keys_, *blobs_, &recorder_);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    auto b = service_->CreateBucket(t->id, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
    for (const char* key : {"a", "b", "c"}) {
      Put(key, Bytes(3 * crypto::kMinSegmentSize + 100, static_cast<uint8_t>(key[0])));
    }
  }

  void Put(const std::string& key, const Bytes& data) {
    auto w = service_->BeginPut(bucket_, key, {}, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    ASSERT_OK((*w)->Commit({}));
  }

  std::string BlobPath(const std::string& key) {
    auto rec = catalog_->GetObject(bucket_.id, key);
    EXPECT_OK(rec);
    for (const auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
      if (e.path().filename() == rec->parts.at(0).blob_id) {
        return e.path().string();
      }
    }
    ADD_FAILURE() << "no blob file for " << key;
    return "";
  }

  void Edit(const std::string& key, const std::function<void(std::string&)>& edit) {
    const std::string path = BlobPath(key);
    std::string data;
    {
      std::ifstream in(path, std::ios::binary);
      data.assign(std::istreambuf_iterator<char>(in), {});
    }
    edit(data);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }

  ScrubReport Scrub(const ScrubOptions& options = {}) {
    auto r = scrubber_->Run(options);
    EXPECT_OK(r);
    return r.ok() ? *r : ScrubReport{};
  }

  void ExpectOneFinding(const ScrubReport& r, const std::string& key) {
    ASSERT_EQ(r.damaged.size(), 1u);
    EXPECT_EQ(r.damaged[0].key, key);
    EXPECT_EQ(r.damaged[0].bucket, "dossiers");
    EXPECT_EQ(r.damaged[0].tenant_name, "acme");
    EXPECT_EQ(r.damaged[0].error.code, Errc::kCorruption) << r.damaged[0].error.message;
    EXPECT_EQ(r.objects, 2u);
    auto failures = IntegrityFailures(recorder_);
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0].operation, audit::Operation::kDecrypt);
    EXPECT_EQ(failures[0].object_key, key);
    EXPECT_EQ(failures[0].object_id, r.damaged[0].object_id);
    EXPECT_EQ(failures[0].request.action, kScrubAction);
  }

  std::unique_ptr<ObjectService> service_;
  std::unique_ptr<Scrubber> scrubber_;
  FakeRecorder recorder_;
  catalog::Bucket bucket_;
};

TEST_F(ScrubTest, CleanStoreReportsNothing) {
  const ScrubReport r = Scrub();
  EXPECT_EQ(r.objects, 3u);
  EXPECT_EQ(r.bytes, 3 * (3 * crypto::kMinSegmentSize + 100));
  EXPECT_TRUE(r.damaged.empty());
  EXPECT_FALSE(r.stopped);
  EXPECT_TRUE(IntegrityFailures(recorder_).empty());
}

// An object under a named key that was destroyed is unreadable on purpose: counted apart, never
// reported as damage (which would raise an alert at every pass).
TEST_F(ScrubTest, AnObjectUnderADestroyedNamedKeyIsErasedNotDamaged) {
  auto key = keys_->CreateNamedKey(bucket_.tenant_id, "customer-1");
  ASSERT_OK(key);
  auto w = service_->BeginPut(bucket_, "erased", {}, {}, nullptr, std::nullopt, {}, {}, key->key_id);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(AsBytes("gone")));
  ASSERT_OK((*w)->Commit({}));
  ASSERT_OK(service_->DestroyNamedKey(key->ref(), false));
  const ScrubReport r = Scrub();
  EXPECT_EQ(r.objects, 3u);
  EXPECT_EQ(r.erased, 1u);
  EXPECT_TRUE(r.damaged.empty());
  EXPECT_TRUE(IntegrityFailures(recorder_).empty());
}

TEST_F(ScrubTest, FlippedBitIsOneFindingAndOneRecord) {
  Edit("b", [](std::string& d) { d[crypto::SegmentOffset(2, crypto::kMinSegmentSize) + 5] ^= 0x01; });
  ExpectOneFinding(Scrub(), "b");
}

TEST_F(ScrubTest, TruncatedBlobIsOneFindingAndOneRecord) {
  Edit("a", [](std::string& d) { d.resize(d.size() - 1); });
  ExpectOneFinding(Scrub(), "a");
}

// Every segment still opens: only the file length shows the extra bytes.
TEST_F(ScrubTest, BytesAppendedAfterLastSegmentAreCorruption) {
  Edit("c", [](std::string& d) { d.append(100, '\x5a'); });
  const ScrubReport r = Scrub();
  ExpectOneFinding(r, "c");
  EXPECT_NE(r.damaged[0].error.message.find("appended"), std::string::npos) << r.damaged[0].error.message;
}

TEST_F(ScrubTest, OnlyOneTenant) {
  ScrubOptions options;
  options.only_tenant = "nobody";
  EXPECT_THAT(scrubber_->Run(options), StatusIs(StatusCode::kNotFound));
  options.only_tenant = "acme";
  EXPECT_EQ(Scrub(options).objects, 3u);
}

TEST_F(ScrubTest, RateLimitPacesTheReads) {
  ScrubOptions options;
  options.bytes_per_second = 128 * 1024;
  const auto start = std::chrono::steady_clock::now();
  const ScrubReport r = Scrub(options);  // no pause callback: the walk sleeps
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.objects, 3u);
  // ~37 KiB at 128 KiB/s: the walk starts with no credit, so it cannot finish sooner.
  EXPECT_GE(elapsed, static_cast<double>(r.bytes) / (128 * 1024) - 0.02);
}

TEST_F(ScrubTest, StopsWhenAsked) {
  ScrubOptions options;
  int checks = 0;
  options.pause = [&](std::chrono::nanoseconds) { return ++checks < 2; };
  const ScrubReport r = Scrub(options);
  EXPECT_TRUE(r.stopped);
  EXPECT_LT(r.objects, 3u);
}

}  // namespace
}  // namespace coffre::service
