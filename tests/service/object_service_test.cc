#include "coffre/service/object_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "coffre/catalog/blob_description.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/crypto/checksum.h"
#include "coffre/crypto/hash.h"
#include "service/data_key_aad.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"
#include "support/test_data.h"

namespace coffre::service {
namespace {

using test_support::Pattern;
using test_support::StatusIs;

namespace fs = std::filesystem;

class ObjectServiceTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("service"));
    ServiceOptions opts;
    opts.segment_size = 4096;  // small segments: boundaries are cheap to test
    opts.min_part_size = 5000;
    opts.garbage_grace_ms = 0;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  SResult<PutResult> Put(const std::string& key, const Bytes& data, CommitOptions opts = {}) {
    auto w =
        service_->BeginPut(bucket_, key, {{"content-type", "application/pdf"}}, {crypto::ChecksumAlgorithm::kCrc32c});
    if (!w.ok()) return w.error();
    // Uneven writes exercise the segment buffering.
    size_t off = 0, step = 1;
    while (off < data.size()) {
      size_t n = std::min(step, data.size() - off);
      auto r = (*w)->Write(ByteView(data.data() + off, n));
      if (!r.ok()) return r.error();
      off += n;
      step = step * 3 + 1;
    }
    return (*w)->Commit(opts);
  }

  // Reads with a `buf_size` buffer: smaller than a segment (4096 here) goes through the reader's
  // segment cache; a whole segment or more is decrypted straight into the buffer.
  Bytes Get(const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt,
            size_t buf_size = 1000) {
    auto r = service_->OpenObject(bucket_, key);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    if (range) {
      EXPECT_OK((*r)->SetRange(range->first, range->second));
    }
    Bytes out;
    Bytes buf(buf_size);
    for (;;) {
      auto n = (*r)->Read(buf);
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    return out;
  }

  std::vector<fs::path> BlobFiles() {
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    return files;
  }

  // Stores `data` as the only object, flips the lowest bit of its blob's byte at `offset`, and
  // opens it.
  SResult<std::unique_ptr<ObjectReader>> PutDamagedAndOpen(const std::string& key, const Bytes& data, uint64_t offset) {
    auto put = Put(key, data);
    EXPECT_OK(put);
    auto files = BlobFiles();
    EXPECT_EQ(files.size(), 1u);
    if (!put.ok()) return put.error();
    if (files.size() != 1) return Error{Errc::kInternal, "expected the object's blob alone"};
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 1);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
    f.close();
    EXPECT_FALSE(f.fail()) << files[0];
    return service_->OpenObject(bucket_, key);
  }

  std::unique_ptr<ObjectService> service_;
  std::string tenant_;
  catalog::Bucket bucket_;
};

TEST_F(ObjectServiceTest, RoundTripsAtSegmentBoundaries) {
  for (size_t size : {0, 1, 4095, 4096, 4097, 3 * 4096 + 7}) {
    Bytes data = Pattern(size, static_cast<uint32_t>(size));
    auto put = Put("k" + std::to_string(size), data);
    ASSERT_OK(put);
    EXPECT_EQ(put->etag, HexEncode(crypto::Md5::Digest(data)));
    EXPECT_EQ(Get("k" + std::to_string(size)), data) << size;
  }
}

TEST_F(ObjectServiceTest, RangesDecryptOnlyWhatTheyCover) {
  Bytes data = Pattern(5 * 4096 + 100);
  ASSERT_OK(Put("r", data));
  for (auto [a, b] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {4095, 4096}, {4096, 8191}, {100, 12000}, {data.size() - 1, data.size() - 1}}) {
    Bytes want(data.begin() + static_cast<std::ptrdiff_t>(a), data.begin() + static_cast<std::ptrdiff_t>(b + 1));
    EXPECT_EQ(Get("r", std::make_pair(a, b)), want) << a << "-" << b;
  }
}

TEST_F(ObjectServiceTest, ReadsWithBuffersOfAnySizeAndRangeGiveTheSameBytes) {
  Bytes data = Pattern(5 * 4096 + 100, 11);
  ASSERT_OK(Put("any", data));
  const std::vector<std::optional<std::pair<uint64_t, uint64_t>>> ranges = {
      std::nullopt, std::make_pair<uint64_t, uint64_t>(4096, 12287), std::make_pair<uint64_t, uint64_t>(1, 12000),
      std::make_pair<uint64_t, uint64_t>(8192, data.size() - 1), std::make_pair<uint64_t, uint64_t>(4095, 4096)};
  for (size_t buf_size : {1, 1000, 4095, 4096, 4097, 8192, 12289, 100000}) {
    for (const auto& range : ranges) {
      const uint64_t a = range ? range->first : 0;
      const uint64_t b = range ? range->second : data.size() - 1;
      Bytes want(data.begin() + static_cast<std::ptrdiff_t>(a), data.begin() + static_cast<std::ptrdiff_t>(b + 1));
      EXPECT_EQ(Get("any", range, buf_size), want) << "buffer " << buf_size << ", bytes " << a << "-" << b;
    }
  }
}

TEST_F(ObjectServiceTest, BadDigestStoresNothingAndKeepsTheOldObject) {
  Bytes old_data = Pattern(10000, 7);
  ASSERT_OK(Put("doc", old_data));
  CommitOptions opts;
  opts.content_md5 = Bytes(16, 0);
  auto r = Put("doc", Pattern(20000, 8), opts);
  ASSERT_THAT(r, StatusIs(Errc::kBadDigest));
  CommitOptions crc;
  crc.expected_checksums[crypto::ChecksumAlgorithm::kCrc32c] = Bytes(4, 0);
  r = Put("doc", Pattern(20000, 9), crc);
  ASSERT_THAT(r, StatusIs(Errc::kBadDigest));
  EXPECT_EQ(Get("doc"), old_data);
  EXPECT_EQ(BlobFiles().size(), 1u);
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

TEST_F(ObjectServiceTest, OverwriteCollectsTheOldBlob) {
  ASSERT_OK(Put("doc", Pattern(100, 1)));
  ASSERT_OK(Put("doc", Pattern(200, 2)));
  auto removed = service_->CollectGarbage();
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ(BlobFiles().size(), 1u);
  EXPECT_EQ(Get("doc"), Pattern(200, 2));
  ASSERT_OK(service_->DeleteObject(bucket_, "doc"));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_TRUE(BlobFiles().empty());
}

// The protocol layer stores a small body on a network thread only when the writer says Write() just
// copies it: such a write reaches no file, and the first write that would seal a batch says so.
TEST_F(ObjectServiceTest, AWriteStaysInMemoryUntilItWouldSealABatch) {
  auto w = service_->BeginPut(bucket_, "mem", {}, {});
  ASSERT_OK(w);
  auto temp_bytes = [&] {
    uintmax_t n = 0;
    for (auto& e : fs::directory_iterator(dir_ + "/tmp")) n += fs::file_size(e.path());
    return n;
  };
  const uintmax_t begun = temp_bytes();
  constexpr size_t kBatch = 256 * 1024;  // 64 segments of this fixture's 4 KiB
  EXPECT_TRUE((*w)->WriteStaysInMemory(4096));
  EXPECT_TRUE((*w)->WriteStaysInMemory(kBatch));
  EXPECT_FALSE((*w)->WriteStaysInMemory(kBatch + 1));
  const Bytes data = Pattern(kBatch + 1, 5);
  ASSERT_OK((*w)->Write(ByteView(data.data(), 4096)));
  ASSERT_OK((*w)->Write(ByteView(data.data() + 4096, kBatch - 4096)));
  EXPECT_EQ(temp_bytes(), begun);  // a full batch, still in memory
  EXPECT_FALSE((*w)->WriteStaysInMemory(1));
  ASSERT_OK((*w)->Write(ByteView(data.data() + kBatch, 1)));
  EXPECT_GT(temp_bytes(), begun);  // that write sealed and wrote the batch
  ASSERT_OK((*w)->Commit({}));
  EXPECT_EQ(Get("mem"), data);
}

// A caller that writes in small steps (a body received in small steps) tells the writer so, and
// the writer then batches no more than that: such batches are hashed without the hashing lane,
// and the ETag and checksums still cover every byte in order.
TEST_F(ObjectServiceTest, AWriterToldOfSmallWritesSealsSmallBatches) {
  auto w = service_->BeginPut(bucket_, "steps", {}, {crypto::ChecksumAlgorithm::kCrc32c});
  ASSERT_OK(w);
  (*w)->SetWriteSize(6000);  // two segments of this fixture's 4 KiB
  EXPECT_TRUE((*w)->WriteStaysInMemory(2 * 4096));
  EXPECT_FALSE((*w)->WriteStaysInMemory(2 * 4096 + 1));
  const Bytes data = Pattern(300 * 1000 + 7, 9);
  for (size_t off = 0; off < data.size(); off += 6000) {
    const size_t n = std::min<size_t>(6000, data.size() - off);
    ASSERT_OK((*w)->Write(ByteView(data.data() + off, n)));
  }
  auto put = (*w)->Commit({});
  ASSERT_OK(put);
  EXPECT_EQ(put->etag, HexEncode(crypto::Md5::Digest(data)));
  EXPECT_EQ(put->checksums[crypto::ChecksumAlgorithm::kCrc32c],
            crypto::ComputeChecksum(crypto::ChecksumAlgorithm::kCrc32c, data));
  EXPECT_EQ(Get("steps"), data);
}

// A PUT that declares its size (as every S3 PUT does) is written front to back as a version 2
// blob of known size, which gets a pack record when small.
class PackedObjectTest : public ObjectServiceTest {
 protected:
  SResult<PutResult> PutDeclared(const std::string& key, const Bytes& data, std::optional<uint64_t> declared,
                                 catalog::Attributes attributes = {},
                                 std::set<crypto::ChecksumAlgorithm> checksums = {}) {
    auto w = service_->BeginPut(bucket_, key, std::move(attributes), std::move(checksums), nullptr, declared);
    if (!w.ok()) return w.error();
    if (auto r = (*w)->Write(data); !r.ok()) return r.error();
    return (*w)->Commit({});
  }
  std::string BlobIdOf(const std::string& key) {
    auto rec = catalog_->GetObject(bucket_.id, key);
    EXPECT_OK(rec);
    return rec.ok() ? rec->parts.at(0).blob_id : "";
  }
  Bytes BlobBytes(const std::string& blob_id) {
    auto reader = blobs_->Open(blob_id);
    EXPECT_OK(reader);
    if (!reader.ok()) return {};
    Bytes bytes((*reader)->size());
    EXPECT_OK((*reader)->ReadAt(0, bytes));
    return bytes;
  }
  // Opens a version 2 blob's sealed description with nothing but the blob and the keystore, as a
  // catalog rebuild must: the header names the tenant key, and its copy of the data key is bound
  // to the blob's id.
  Result<catalog::BlobDescription> DescriptionOf(const std::string& blob_id) {
    const Bytes blob = BlobBytes(blob_id);
    if (blob.size() < crypto::kHeaderSize) return Status::Corruption("shorter than a header");
    COFFRE_ASSIGN_OR_RETURN(crypto::BlobHeader header,
                            crypto::ParseBlobHeaderUnauthenticated(ByteView(blob).first(crypto::kHeaderSize)));
    const std::string tenant = HexEncode(header.key.tenant_key_id);
    COFFRE_ASSIGN_OR_RETURN(SecretBytes data_key,
                            keys_->UnwrapDataKey(tenant, header.key.tenant_key_version, header.key.wrapped_data_key,
                                                 internal::BlobHeaderKeyAad(blob_id)));
    COFFRE_ASSIGN_OR_RETURN(
        crypto::BlobDecryptor decryptor,
        crypto::BlobDecryptor::Create(data_key, {tenant, blob_id}, ByteView(blob).first(crypto::kHeaderSize)));
    const uint64_t at = crypto::DescriptionOffset(decryptor.header());
    COFFRE_ASSIGN_OR_RETURN(Bytes opened, decryptor.OpenDescription(ByteView(blob).subspan(static_cast<size_t>(at))));
    return catalog::DecodeBlobDescription(opened);  // padded with spaces: still JSON
  }
};

TEST_F(PackedObjectTest, ReadsBackAVersion2BlobOfItsDeclaredSize) {
  for (uint64_t size : {uint64_t{0}, uint64_t{10}, uint64_t{4096}, uint64_t{10000}}) {
    SCOPED_TRACE(size);
    const Bytes data = Pattern(static_cast<size_t>(size), static_cast<uint32_t>(size));
    ASSERT_OK(PutDeclared("doc", data, size));
    EXPECT_EQ(BlobIdOf("doc").size(), 48u);  // a record's id
    const Bytes blob = BlobBytes(BlobIdOf("doc"));
    auto header = crypto::ParseBlobHeaderUnauthenticated(ByteView(blob).first(crypto::kHeaderSize));
    ASSERT_OK(header);
    EXPECT_EQ(header->version, crypto::kBlobFormatVersion2);
    EXPECT_EQ(header->plaintext_length, size);
    EXPECT_EQ(Get("doc"), data);
    if (size > 9000) {
      EXPECT_EQ(Get("doc", std::make_pair(uint64_t{4000}, uint64_t{8999})),
                Bytes(data.begin() + 4000, data.begin() + 9000));
    }
  }
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

TEST_F(PackedObjectTest, RefusesABodyOfAnotherLengthThanDeclaredAndKeepsNothing) {
  ASSERT_OK(PutDeclared("doc", Pattern(100, 1), 100));
  const std::string kept = BlobIdOf("doc");
  // Longer than declared: refused at the write that overflows.
  EXPECT_THAT(PutDeclared("doc", Pattern(10000, 2), 10), StatusIs(Errc::kInvalidArgument));
  // Shorter: refused at Commit.
  EXPECT_THAT(PutDeclared("doc", Pattern(10000, 3), 50000), StatusIs(Errc::kInvalidArgument));
  EXPECT_EQ(BlobIdOf("doc"), kept);
  EXPECT_EQ(Get("doc"), Pattern(100, 1));
  auto listed = blobs_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name, kept);
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

// The blob carries its catalog row, sealed: the store plus the keystore can rebuild the catalog.
TEST_F(PackedObjectTest, TheBlobDescribesItsCatalogRow) {
  const Bytes data = Pattern(9000, 4);
  ASSERT_OK(PutDeclared("dossiers/2026/\xc3\xa9t\xc3\xa9.pdf", data, data.size(),
                        {{"content-type", "application/pdf"}, {"x-amz-meta-client", "Dupont SARL"}},
                        {crypto::ChecksumAlgorithm::kCrc32c, crypto::ChecksumAlgorithm::kSha256}));
  auto row = catalog_->GetObject(bucket_.id, "dossiers/2026/\xc3\xa9t\xc3\xa9.pdf");
  ASSERT_OK(row);
  auto description = DescriptionOf(row->parts.at(0).blob_id);
  ASSERT_OK(description);
  EXPECT_EQ(description->kind, catalog::BlobDescription::Kind::kObject);
  EXPECT_EQ(description->tenant_id, tenant_);
  EXPECT_EQ(description->bucket_id, bucket_.id);
  EXPECT_EQ(description->bucket_name, "dossiers");
  EXPECT_EQ(description->key, row->key);
  EXPECT_EQ(description->object_id, row->object_id);
  EXPECT_EQ(description->size, row->size);
  EXPECT_EQ(description->etag, row->etag);
  EXPECT_EQ(description->last_modified, row->last_modified);
  EXPECT_EQ(description->attributes, row->attributes);
  EXPECT_EQ(row->attributes.count("x-amz-checksum-sha256"), 1u);
  // The header's copy of the data key is bound to the blob, not to the row: it does not pass for
  // the row's key.
  const Bytes blob = BlobBytes(row->parts.at(0).blob_id);
  auto header = crypto::ParseBlobHeaderUnauthenticated(ByteView(blob).first(crypto::kHeaderSize));
  ASSERT_OK(header);
  EXPECT_NE(header->key.wrapped_data_key, row->key_info.wrapped_data_key);
  catalog::KeyInfo header_copy = row->key_info;
  header_copy.wrapped_data_key = header->key.wrapped_data_key;
  EXPECT_THAT(internal::UnwrapRowDataKey(*keys_, tenant_, header_copy, bucket_.name, row->key, row->object_id),
              StatusIs(StatusCode::kCorruption));
}

TEST_F(PackedObjectTest, APartBlobDescribesItsPartRow) {
  auto upload = service_->CreateUpload(bucket_, "big", {{"content-type", "application/pdf"}});
  ASSERT_OK(upload);
  const Bytes data = Pattern(6000, 5);
  auto w = service_->BeginPart(bucket_, "big", *upload, 7, {crypto::ChecksumAlgorithm::kCrc32}, nullptr, data.size());
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(data));
  ASSERT_OK((*w)->Commit({}));
  auto up = catalog_->GetUpload(*upload);
  ASSERT_OK(up);
  auto parts = catalog_->ListParts(*upload, 0, 10);
  ASSERT_OK(parts);
  ASSERT_EQ(parts->size(), 1u);
  const catalog::PartRecord& part = parts->front();
  auto description = DescriptionOf(part.blob_id);
  ASSERT_OK(description);
  EXPECT_EQ(description->kind, catalog::BlobDescription::Kind::kPart);
  EXPECT_EQ(description->key, "big");
  EXPECT_EQ(description->upload_id, *upload);
  EXPECT_EQ(description->object_id, "");
  EXPECT_EQ(description->part_number, 7u);
  EXPECT_EQ(description->size, part.size);
  EXPECT_EQ(description->etag, part.etag);
  EXPECT_EQ(description->last_modified, part.last_modified);
  EXPECT_EQ(description->attributes, part.attributes);
}

// A Complete writes a manifest: the object's row, parts in order, sealed under the object's key.
TEST_F(PackedObjectTest, ACompletedUploadHasAManifestThatGoesWithTheObject) {
  auto upload = service_->CreateUpload(bucket_, "big", {{"x-amz-meta-dossier", "PME 552 100 554"}});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs;
  for (uint32_t n : {3u, 5u}) {
    const Bytes data = Pattern(6000, n);
    auto w =
        service_->BeginPart(bucket_, "big", *upload, n, {crypto::ChecksumAlgorithm::kSha256}, nullptr, data.size());
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    auto part = (*w)->Commit({});
    ASSERT_OK(part);
    refs.push_back({n, part->etag});
  }
  // A Complete the catalog refuses (the key exists, If-None-Match: *) leaves no manifest behind.
  ASSERT_OK(PutDeclared("big", Pattern(10, 9), 10));
  catalog::WriteCondition none_match;
  none_match.if_none_match_any = true;
  EXPECT_THAT(service_->CompleteUpload(bucket_, "big", *upload, refs, none_match), StatusIs(Errc::kPreconditionFailed));
  auto listed = blobs_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 3u);  // the two parts and the object

  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  auto row = catalog_->GetObject(bucket_.id, "big");
  ASSERT_OK(row);
  ASSERT_FALSE(row->manifest_blob_id.empty());
  auto description = DescriptionOf(row->manifest_blob_id);
  ASSERT_OK(description);
  EXPECT_EQ(description->kind, catalog::BlobDescription::Kind::kManifest);
  EXPECT_EQ(description->tenant_id, tenant_);
  EXPECT_EQ(description->bucket_name, "dossiers");
  EXPECT_EQ(description->key, "big");
  EXPECT_EQ(description->object_id, row->object_id);
  EXPECT_EQ(description->upload_id, *upload);
  EXPECT_EQ(description->size, row->size);
  EXPECT_EQ(description->etag, row->etag);
  EXPECT_EQ(description->last_modified, row->last_modified);
  EXPECT_EQ(description->attributes, row->attributes);
  ASSERT_EQ(description->parts.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(description->parts[i].part_number, row->parts[i].part_number);
    EXPECT_EQ(description->parts[i].blob_id, row->parts[i].blob_id);
    EXPECT_EQ(description->parts[i].size, row->parts[i].size);
    EXPECT_EQ(description->parts[i].etag, row->parts[i].etag);
    EXPECT_EQ(description->parts[i].attributes, row->parts[i].attributes);
  }
  Bytes whole = Pattern(6000, 3);
  const Bytes second = Pattern(6000, 5);
  whole.insert(whole.end(), second.begin(), second.end());
  EXPECT_EQ(Get("big"), whole);

  // Deleting the object collects its parts and its manifest.
  ASSERT_OK(service_->DeleteObject(bucket_, "big"));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_THAT(blobs_->Open(row->manifest_blob_id), StatusIs(StatusCode::kNotFound));
  listed = blobs_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
}

// The largest manifest S3 allows (10,000 parts, each with every checksum, the longest blob ids)
// still fits in a blob's description.
TEST_F(PackedObjectTest, TheLargestManifestFitsInADescription) {
  catalog::BlobDescription d;
  d.kind = catalog::BlobDescription::Kind::kManifest;
  d.tenant_id = std::string(32, 'f');
  d.bucket_id = std::numeric_limits<int64_t>::max();
  d.bucket_name = std::string(63, 'b');
  d.key = std::string(1024, 'k');
  d.object_id = d.upload_id = std::string(64, 'u');
  d.size = uint64_t{5} << 40;
  d.etag = std::string(32, 'e') + "-10000";
  d.last_modified = std::numeric_limits<UnixMillis>::max();
  d.attributes = {{"x-amz-meta-notes", std::string(2048, 'n')}};
  catalog::Attributes checksums;
  for (auto alg : crypto::kAllChecksumAlgorithms) {
    checksums[std::string(crypto::ChecksumHeaderName(alg))] = Base64Encode(crypto::Checksummer::Create(alg)->Final());
  }
  for (uint32_t n = 1; n <= 10000; ++n) {
    d.parts.push_back(catalog::ObjectPart{n, std::string(64, 'a'), uint64_t{5} << 30, std::string(32, 'e'), checksums});
  }
  EXPECT_LE(catalog::EncodeBlobDescription(d).size(), crypto::kMaxBlobDescriptionSize);
}

TEST_F(PackedObjectTest, OverwriteAndDeleteCollectTheRecords) {
  ASSERT_OK(PutDeclared("doc", Pattern(100, 1), 100));
  const std::string first = BlobIdOf("doc");
  ASSERT_OK(PutDeclared("doc", Pattern(200, 2), 200));
  const std::string second = BlobIdOf("doc");
  EXPECT_OK(blobs_->Open(first));
  auto removed = service_->CollectGarbage();
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 1u);
  EXPECT_THAT(blobs_->Open(first), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Get("doc"), Pattern(200, 2));
  ASSERT_OK(service_->DeleteObject(bucket_, "doc"));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_THAT(blobs_->Open(second), StatusIs(StatusCode::kNotFound));
  auto listed = blobs_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
}

TEST_F(PackedObjectTest, AnOpenReaderPinsItsBlobAgainstCollectionInAFileOrARecord) {
  for (std::optional<uint64_t> declared : {std::optional<uint64_t>{}, std::optional<uint64_t>{9000}}) {
    SCOPED_TRACE(declared ? "record" : "file");
    ASSERT_OK(PutDeclared("doc", Pattern(9000, 1), declared));
    EXPECT_EQ(BlobIdOf("doc").size(), declared ? 48u : 32u);
    auto reader = service_->OpenObject(bucket_, "doc");
    ASSERT_OK(reader);
    ASSERT_OK(PutDeclared("doc", Pattern(9000, 2), declared));  // overwrite while a reader is open
    ASSERT_OK(service_->CollectGarbage());
    Bytes out(9000);
    size_t got = 0;
    while (got < out.size()) {
      auto n = (*reader)->Read(std::span<uint8_t>(out.data() + got, out.size() - got));
      ASSERT_OK(n);
      ASSERT_GT(*n, 0u);
      got += *n;
    }
    EXPECT_EQ(out, Pattern(9000, 1));  // the old object, whole
  }
}

TEST_F(ObjectServiceTest, TamperedBlobFailsInsteadOfReturningWrongBytes) {
  auto reader = PutDamagedAndOpen("doc", Pattern(10000, 3), crypto::kHeaderSize + 5000);
  ASSERT_OK(reader);
  Bytes buf(20000);
  // The first segment is intact; the second fails.
  auto n = (*reader)->Read(std::span<uint8_t>(buf.data(), 4096));
  ASSERT_OK(n);
  // A whole segment wanted: decrypted straight into `buf`, which must not keep what failed.
  auto bad = (*reader)->Read(buf);
  ASSERT_THAT(bad, StatusIs(Errc::kCorruption));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.begin() + 4096, [](uint8_t b) { return b == 0; }))
      << "the failed segment's bytes were left in the caller's buffer";
}

// An object of one segment is decrypted when it is opened, so that its first read is a copy from
// memory that a network thread may make; a larger one is read segment by segment, as it is asked.
TEST_F(ObjectServiceTest, OneSegmentObjectIsDecryptedWhenOpened) {
  const Bytes small = Pattern(4096, 5);
  ASSERT_OK(Put("small", small));
  ASSERT_OK(Put("empty", {}));
  ASSERT_OK(Put("large", Pattern(4097, 6)));
  {
    auto reader = service_->OpenObject(bucket_, "small");
    ASSERT_OK(reader);
    EXPECT_TRUE((*reader)->NextReadInMemory());
    ASSERT_OK((*reader)->SetRange(100, 199));
    EXPECT_TRUE((*reader)->NextReadInMemory());
    Bytes buf(1000);
    auto n = (*reader)->Read(buf);
    ASSERT_OK(n);
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n)),
              Bytes(small.begin() + 100, small.begin() + 200));
  }
  EXPECT_EQ(Get("small"), small);
  auto empty = service_->OpenObject(bucket_, "empty");
  ASSERT_OK(empty);
  EXPECT_TRUE((*empty)->NextReadInMemory());
  auto large = service_->OpenObject(bucket_, "large");
  ASSERT_OK(large);
  EXPECT_FALSE((*large)->NextReadInMemory());
}

// A damaged one-segment object fails nothing when it is opened: it is not in memory, and the read
// (on a worker) meets the damage and reports it, leaving nothing in the caller's buffer.
TEST_F(ObjectServiceTest, DamagedOneSegmentObjectIsNotInMemoryAndFailsItsRead) {
  auto reader = PutDamagedAndOpen("doc", Pattern(3000, 7), crypto::kHeaderSize + 10);
  ASSERT_OK(reader);
  EXPECT_FALSE((*reader)->NextReadInMemory());
  Bytes buf(4096);
  auto n = (*reader)->Read(buf);
  ASSERT_THAT(n, StatusIs(Errc::kCorruption));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
}

TEST_F(ObjectServiceTest, BlobsSwappedBetweenObjectsDoNotDecrypt) {
  ASSERT_OK(Put("a", Pattern(5000, 1)));
  ASSERT_OK(Put("b", Pattern(5000, 2)));
  auto files = BlobFiles();
  ASSERT_EQ(files.size(), 2u);
  fs::rename(files[0], dir_ + "/swap");
  fs::rename(files[1], files[0]);
  fs::rename(dir_ + "/swap", files[1]);
  for (const char* key : {"a", "b"}) {
    auto reader = service_->OpenObject(bucket_, key);
    ASSERT_OK(reader);
    Bytes buf(5000);
    auto n = (*reader)->Read(buf);
    ASSERT_THAT(n, StatusIs(Errc::kCorruption)) << key;
  }
}

// A writer of catalog.db (no keys) swaps two rows of one tenant, or moves one to another key or
// bucket: the data key is bound to its bucket and key, so nothing opens in its new place.
TEST_F(ObjectServiceTest, CatalogRowsSwappedOrMovedDoNotOpen) {
  ASSERT_OK(Put("a", Pattern(5000, 1)));
  ASSERT_OK(Put("b", Pattern(5000, 2)));
  auto other = service_->CreateBucket(tenant_, "elsewhere");
  ASSERT_OK(other);
  auto a = catalog_->GetObject(bucket_.id, "a");
  auto b = catalog_->GetObject(bucket_.id, "b");
  ASSERT_OK(a);
  ASSERT_OK(b);
  catalog::ObjectRecord a_as_b = *a;
  a_as_b.key = "b";
  catalog::ObjectRecord b_as_a = *b;
  b_as_a.key = "a";
  catalog::ObjectRecord a_elsewhere = *a;
  a_elsewhere.bucket_id = other->id;
  ASSERT_OK(catalog_->PutObject(a_as_b));
  ASSERT_OK(catalog_->PutObject(b_as_a));
  ASSERT_OK(catalog_->PutObject(a_elsewhere));
  for (const auto& [bucket, key] : {std::pair{bucket_, "a"}, {bucket_, "b"}, {*other, "a"}}) {
    auto reader = service_->OpenObject(bucket, key);
    ASSERT_THAT(reader, StatusIs(Errc::kCorruption)) << bucket.name << "/" << key;
  }
}

// Data keys wrapped before they were bound to bucket and key (object id alone) still open.
TEST_F(ObjectServiceTest, DataKeysOfTheObjectIdBindingStillOpen) {
  auto legacy = keys_->NewDataKey(tenant_, internal::LegacyDataKeyAad("old-object"));
  ASSERT_OK(legacy);
  const catalog::KeyInfo info{legacy->tenant_key_id, legacy->tenant_key_version, legacy->wrapped};
  auto opened = internal::UnwrapRowDataKey(*keys_, tenant_, info, "dossiers", "k", "old-object");
  ASSERT_OK(opened);
  EXPECT_TRUE(std::equal(opened->Reveal().begin(), opened->Reveal().end(), legacy->key.Reveal().begin()));
  auto rewrapped = internal::RewrapRowDataKey(*keys_, tenant_, info, "dossiers", "k", "old-object");
  ASSERT_OK(rewrapped);
  // The one unwrap hands out the key (for the blobs' copies) and keeps the binding it matched.
  EXPECT_TRUE(std::equal(rewrapped->data_key.Reveal().begin(), rewrapped->data_key.Reveal().end(),
                         legacy->key.Reveal().begin(), legacy->key.Reveal().end()));
  EXPECT_OK(keys_->UnwrapDataKey(tenant_, rewrapped->tenant_key_version, rewrapped->wrapped,
                                 internal::LegacyDataKeyAad("old-object")));
  // Under another object id neither binding opens.
  EXPECT_THAT(internal::UnwrapRowDataKey(*keys_, tenant_, info, "dossiers", "k", "other").status(),
              StatusIs(StatusCode::kCorruption));
  // A key of the current binding does not open as a legacy one elsewhere either.
  auto current = keys_->NewDataKey(tenant_, internal::DataKeyAad("dossiers", "k", "new-object"));
  ASSERT_OK(current);
  const catalog::KeyInfo current_info{current->tenant_key_id, current->tenant_key_version, current->wrapped};
  EXPECT_OK(internal::UnwrapRowDataKey(*keys_, tenant_, current_info, "dossiers", "k", "new-object"));
  EXPECT_THAT(internal::UnwrapRowDataKey(*keys_, tenant_, current_info, "dossiers", "k2", "new-object").status(),
              StatusIs(StatusCode::kCorruption));
}

TEST_F(ObjectServiceTest, MultipartCompleteChecksPartsAndReadsAcrossThem) {
  auto id = service_->CreateUpload(bucket_, "big", {});
  ASSERT_OK(id);
  std::vector<Bytes> parts = {Pattern(6000, 1), Pattern(5000, 2), Pattern(123, 3)};
  std::vector<UploadPartRef> refs;
  for (uint32_t i = 0; i < parts.size(); ++i) {
    auto w = service_->BeginPart(bucket_, "big", *id, i + 1, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(parts[i]));
    auto r = (*w)->Commit({});
    ASSERT_OK(r);
    refs.push_back({i + 1, r->etag});
  }
  auto reordered = refs;
  std::swap(reordered[0], reordered[1]);
  EXPECT_THAT(service_->CompleteUpload(bucket_, "big", *id, reordered, {}), StatusIs(Errc::kInvalidPartOrder));
  auto wrong = refs;
  wrong[1].etag = "00000000000000000000000000000000";
  EXPECT_THAT(service_->CompleteUpload(bucket_, "big", *id, wrong, {}), StatusIs(Errc::kInvalidPart));
  std::vector<UploadPartRef> small = {refs[2], {4, refs[2].etag}};
  EXPECT_THAT(service_->CompleteUpload(bucket_, "big", *id, small, {}), StatusIs(Errc::kInvalidPart));

  auto done = service_->CompleteUpload(bucket_, "big", *id, refs, {});
  ASSERT_OK(done);
  crypto::Md5 md5s;
  Bytes all;
  for (size_t i = 0; i < parts.size(); ++i) {
    md5s.Update(crypto::Md5::Digest(parts[i]));
    all.insert(all.end(), parts[i].begin(), parts[i].end());
  }
  EXPECT_EQ(done->etag, HexEncode(md5s.Final()) + "-3");
  EXPECT_EQ(Get("big"), all);
  Bytes want(all.begin() + 5990, all.begin() + 11010);
  EXPECT_EQ(Get("big", std::make_pair<uint64_t, uint64_t>(5990, 11009)), want);
  for (size_t buf_size : {4096, 6000, 65536}) {
    EXPECT_EQ(Get("big", std::nullopt, buf_size), all) << buf_size;
    EXPECT_EQ(Get("big", std::make_pair<uint64_t, uint64_t>(5990, 11009), buf_size), want) << buf_size;
  }
  EXPECT_THAT(service_->AbortUpload(bucket_, "big", *id), StatusIs(Errc::kNoSuchUpload));
}

TEST_F(ObjectServiceTest, EntityTooSmallForNonLastParts) {
  auto id = service_->CreateUpload(bucket_, "x", {});
  ASSERT_OK(id);
  std::vector<UploadPartRef> refs;
  for (uint32_t i = 1; i <= 2; ++i) {
    auto w = service_->BeginPart(bucket_, "x", *id, i, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(Pattern(100, i)));
    auto r = (*w)->Commit({});
    ASSERT_OK(r);
    refs.push_back({i, r->etag});
  }
  EXPECT_THAT(service_->CompleteUpload(bucket_, "x", *id, refs, {}), StatusIs(Errc::kEntityTooSmall));
}

TEST_F(ObjectServiceTest, TenantsCannotReachEachOthersBuckets) {
  auto other = keys_->CreateTenant("other");
  ASSERT_OK(other);
  EXPECT_THAT(service_->GetBucket(other->id, "dossiers"), StatusIs(Errc::kAccessDenied));
  EXPECT_THAT(service_->CreateBucket(other->id, "dossiers"), StatusIs(Errc::kBucketAlreadyExists));
  EXPECT_THAT(service_->CreateBucket(tenant_, "dossiers"), StatusIs(Errc::kBucketAlreadyOwnedByYou));
  EXPECT_THAT(service_->DeleteBucket(other->id, "dossiers"), StatusIs(Errc::kAccessDenied));
}

TEST_F(ObjectServiceTest, PlaintextNeverReachesTheDataDirectory) {
  const std::string marker = "COFFRE-MARKER-7f3a9c-DOSSIER-PRET";
  Bytes data;
  for (int i = 0; i < 500; ++i) data.insert(data.end(), marker.begin(), marker.end());
  ASSERT_OK(Put("secret/" + marker, data));
  for (auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(e.path().string().find(marker), std::string::npos);
    if (!e.is_regular_file() || e.path().string().find("catalog.db") != std::string::npos) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content.find(marker), std::string::npos) << e.path();
  }
}

// Tags changed after the write: each change is an update blob the row names; the one it replaces,
// and a refused change's, leave nothing behind once garbage is collected.
TEST_F(ObjectServiceTest, TagChangesKeepOneUpdateBlobAndRefusalsLeaveNone) {
  auto count_blobs = [&] {
    auto listed = blobs_->ListBlobs(nullptr);
    EXPECT_OK(listed);
    return listed.ok() ? listed->size() : 0;
  };
  ASSERT_OK(Put("doc", Pattern(100, 1)));
  const size_t alone = count_blobs();
  EXPECT_THAT(service_->SetObjectTags(bucket_, "absent", {{"a", "1"}}), StatusIs(Errc::kNoSuchKey));
  EXPECT_EQ(count_blobs(), alone);
  // Removing the tags of an untagged object writes nothing.
  ASSERT_OK(service_->SetObjectTags(bucket_, "doc", {}));
  EXPECT_EQ(count_blobs(), alone);

  ASSERT_OK(service_->SetObjectTags(bucket_, "doc", {{"a", "1"}}));
  const std::string first = catalog_->GetObject(bucket_.id, "doc")->update_blob_id;
  ASSERT_FALSE(first.empty());
  ASSERT_OK(service_->SetObjectTags(bucket_, "doc", {{"b", "2"}}));
  auto info = service_->HeadObject(bucket_, "doc");
  ASSERT_OK(info);
  EXPECT_EQ(info->tags, (catalog::Tags{{"b", "2"}}));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_EQ(count_blobs(), alone + 1);
  EXPECT_THAT(blobs_->Open(first).status(), StatusIs(StatusCode::kNotFound));
  // The object reads as before; deleting it takes its update blob too.
  EXPECT_EQ(Get("doc"), Pattern(100, 1));
  ASSERT_OK(service_->DeleteObject(bucket_, "doc"));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_EQ(count_blobs(), 0u);
}

}  // namespace
}  // namespace coffre::service
