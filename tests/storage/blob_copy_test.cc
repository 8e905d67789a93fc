#include "coffre/storage/blob_copy.h"

#include <gtest/gtest.h>

#include <map>

#include "support/status_matchers.h"
#include "support/temp_dir.h"
#include "support/test_data.h"

namespace coffre::storage {
namespace {

using test_support::Pattern;
using test_support::StatusIs;
using ::testing::HasSubstr;

// A destination whose blobs read back with one byte changed: what verification exists to catch.
class FlippingStore final : public BlobStore {
 public:
  explicit FlippingStore(BlobStore& inner) : inner_(inner) {}

  class Reader final : public BlobReader {
   public:
    explicit Reader(std::unique_ptr<BlobReader> inner) : inner_(std::move(inner)) {}
    Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
      COFFRE_RETURN_IF_ERROR(inner_->ReadAt(offset, out));
      if (offset == 0 && !out.empty()) out[0] ^= 0x80;
      return Status::Ok();
    }
    uint64_t size() const override { return inner_->size(); }

   private:
    std::unique_ptr<BlobReader> inner_;
  };

  Result<std::unique_ptr<BlobWriter>> CreateBlob(std::optional<uint64_t> size) override {
    return inner_.CreateBlob(size);
  }
  uint64_t MaxPackedBlob() const override { return inner_.MaxPackedBlob(); }
  Result<std::unique_ptr<BlobWriter>> Create(const std::string& id, std::optional<uint64_t> size) override {
    return inner_.Create(id, size);
  }
  Result<std::unique_ptr<BlobReader>> Open(const std::string& id) const override {
    COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader, inner_.Open(id));
    return std::unique_ptr<BlobReader>(new Reader(std::move(reader)));
  }
  Status Remove(const std::string& id) override { return inner_.Remove(id); }
  Result<uint64_t> RemoveTemporaries() override { return inner_.RemoveTemporaries(); }
  Result<std::vector<StoredFile>> ListBlobs(std::vector<std::string>* strays) const override {
    return inner_.ListBlobs(strays);
  }
  Status RemoveStray(const std::string& stray) override { return inner_.RemoveStray(stray); }
  Result<std::vector<StoredFile>> ListTemporaries() const override { return inner_.ListTemporaries(); }
  Status RemoveTemporary(const std::string& name) override { return inner_.RemoveTemporary(name); }

 private:
  BlobStore& inner_;
};

class BlobCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto from = OpenLocalBlobStore(from_dir_.str());
    ASSERT_OK(from);
    from_ = std::move(from).value();
    auto to = OpenLocalBlobStore(to_dir_.str());
    ASSERT_OK(to);
    to_ = std::move(to).value();
  }

  // A blob in the source, as the service writes one (a pack record when small).
  std::string Put(BlobStore& store, const Bytes& data) {
    auto w = store.CreateBlob(data.size());
    EXPECT_OK(w);
    if (!w.ok()) return "";
    EXPECT_OK((*w)->Append(data));
    EXPECT_OK((*w)->Commit());
    written_[(*w)->id()] = data;
    return (*w)->id();
  }

  Bytes Read(const BlobStore& store, const std::string& id) {
    auto r = store.Open(id);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    Bytes out((*r)->size());
    EXPECT_OK((*r)->ReadAt(0, out));
    return out;
  }

  test_support::TempDir from_dir_{"copy-from"};
  test_support::TempDir to_dir_{"copy-to"};
  std::unique_ptr<BlobStore> from_;
  std::unique_ptr<BlobStore> to_;
  std::map<std::string, Bytes> written_;
};

TEST_F(BlobCopyTest, EveryBlobArrivesUnchangedUnderItsId) {
  Put(*from_, Pattern(1000, 1));       // a pack record
  Put(*from_, Pattern(3'000'000, 2));  // a file of its own, several chunks
  Put(*from_, Pattern(0, 3));          // empty
  for (uint32_t i = 0; i < 20; ++i) Put(*from_, Pattern(5000 + i, 10 + i));
  auto report = CopyBlobs(*from_, *to_, {.jobs = 4});
  ASSERT_OK(report);
  EXPECT_EQ(report->listed, written_.size());
  EXPECT_EQ(report->copied, written_.size());
  EXPECT_EQ(report->already_there, 0u);
  EXPECT_TRUE(report->failed.empty());
  uint64_t bytes = 0;
  for (const auto& [id, data] : written_) {
    EXPECT_EQ(Read(*to_, id), data) << id;
    bytes += data.size();
  }
  EXPECT_EQ(report->bytes_copied, bytes);
}

TEST_F(BlobCopyTest, ASecondRunCopiesOnlyWhatIsNew) {
  Put(*from_, Pattern(1000, 1));
  Put(*from_, Pattern(400'000, 2));
  ASSERT_OK(CopyBlobs(*from_, *to_, {}));
  const std::string late = Put(*from_, Pattern(7000, 3));
  auto again = CopyBlobs(*from_, *to_, {.jobs = 1});
  ASSERT_OK(again);
  EXPECT_EQ(again->copied, 1u);
  EXPECT_EQ(again->already_there, 2u);
  EXPECT_EQ(Read(*to_, late), written_[late]);
}

TEST_F(BlobCopyTest, AnotherSizeUnderTheSameIdIsReportedAndLeftAlone) {
  const std::string id = Put(*from_, Pattern(1000, 1));
  auto w = to_->Create(id, 10);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Pattern(10, 9)));
  ASSERT_OK((*w)->Commit());
  auto report = CopyBlobs(*from_, *to_, {});
  ASSERT_OK(report);
  EXPECT_EQ(report->copied, 0u);
  ASSERT_EQ(report->failed.size(), 1u);
  EXPECT_THAT(report->failed[0], HasSubstr(id));
  EXPECT_EQ(Read(*to_, id), Pattern(10, 9));
  EXPECT_EQ(Read(*from_, id), written_[id]);
}

TEST_F(BlobCopyTest, ACopyThatReadsBackDifferentlyIsRemovedAndReported) {
  const std::string id = Put(*from_, Pattern(300'000, 1));
  FlippingStore lying(*to_);
  auto report = CopyBlobs(*from_, lying, {});
  ASSERT_OK(report);
  EXPECT_EQ(report->copied, 0u);
  ASSERT_EQ(report->failed.size(), 1u);
  EXPECT_THAT(report->failed[0], HasSubstr("differs"));
  EXPECT_THAT(to_->Open(id), StatusIs(StatusCode::kNotFound));
  // Without verification the same copy is taken on trust.
  auto trusted = CopyBlobs(*from_, lying, {.verify = false});
  ASSERT_OK(trusted);
  EXPECT_EQ(trusted->copied, 1u);
}

TEST_F(BlobCopyTest, ManyFailuresStopTheRunEarly) {
  for (uint32_t i = 0; i < 10; ++i) Put(*from_, Pattern(2000, i));
  FlippingStore lying(*to_);
  auto report = CopyBlobs(*from_, lying, {.jobs = 1, .max_failures = 3});
  ASSERT_OK(report);
  EXPECT_EQ(report->failed.size(), 3u);
  EXPECT_EQ(report->copied, 0u);
}

TEST_F(BlobCopyTest, BadOptionsAreRefused) {
  EXPECT_THAT(CopyBlobs(*from_, *to_, {.jobs = 0}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(CopyBlobs(*from_, *to_, {.jobs = 65}), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace coffre::storage
