#include "coffre/catalog/blob_description.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "support/status_matchers.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

using Kind = BlobDescription::Kind;

BlobDescription Object() {
  BlobDescription d;
  d.kind = Kind::kObject;
  d.tenant_id = "t-5f3a";
  d.bucket_id = 42;
  d.bucket_name = "dossiers-pme";
  d.key = "prêts/2026/SIREN 552 100 554/bilan.pdf";
  d.object_id = "0b1c2d3e4f5a6b7c";
  d.size = 123456;
  d.etag = "9e107d9d372bb6826bd81d3542a419d6";
  d.last_modified = 1796342400123;
  d.attributes = {{"content-type", "application/pdf"}, {"x-amz-meta-dossier", "Société Générale de Test"}};
  return d;
}

std::string Text(const Bytes& b) { return std::string(b.begin(), b.end()); }

void ExpectSame(const BlobDescription& a, const BlobDescription& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.tenant_id, b.tenant_id);
  EXPECT_EQ(a.bucket_id, b.bucket_id);
  EXPECT_EQ(a.bucket_name, b.bucket_name);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.object_id, b.object_id);
  EXPECT_EQ(a.upload_id, b.upload_id);
  EXPECT_EQ(a.part_number, b.part_number);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.etag, b.etag);
  EXPECT_EQ(a.last_modified, b.last_modified);
  EXPECT_EQ(a.attributes, b.attributes);
  EXPECT_EQ(a.null_version, b.null_version);
  ASSERT_EQ(a.parts.size(), b.parts.size());
  for (size_t i = 0; i < a.parts.size(); ++i) {
    EXPECT_EQ(a.parts[i].part_number, b.parts[i].part_number);
    EXPECT_EQ(a.parts[i].blob_id, b.parts[i].blob_id);
    EXPECT_EQ(a.parts[i].size, b.parts[i].size);
    EXPECT_EQ(a.parts[i].etag, b.parts[i].etag);
    EXPECT_EQ(a.parts[i].attributes, b.parts[i].attributes);
  }
}

TEST(BlobDescriptionTest, EachKindRoundTrips) {
  const BlobDescription object = Object();

  BlobDescription part = Object();
  part.kind = Kind::kPart;
  part.object_id.clear();
  part.upload_id = "upload-7f";
  part.part_number = 10000;
  part.attributes = {{"x-amz-checksum-crc32c", "yZRlqg=="}};

  BlobDescription manifest = Object();
  manifest.kind = Kind::kManifest;
  manifest.upload_id = "upload-7f";
  manifest.etag = "d41d8cd98f00b204e9800998ecf8427e-2";
  manifest.parts = {{1, "aa11", 5 << 20, "e1", {{"x-amz-checksum-crc32c", "AAAAAA=="}}}, {2, "bb22", 17, "e2", {}}};

  // A version of its own, and a delete marker (which has no data and no upload).
  BlobDescription version = Object();
  version.null_version = false;
  BlobDescription marker = Object();
  marker.kind = Kind::kDeleteMarker;
  marker.size = 0;
  marker.etag.clear();
  marker.attributes.clear();
  marker.null_version = false;

  for (const BlobDescription& d : {object, part, manifest, version, marker}) {
    auto decoded = DecodeBlobDescription(EncodeBlobDescription(d));
    ASSERT_OK(decoded);
    ExpectSame(*decoded, d);
  }
  // Only a version of its own says so: a null version's encoding is what it was before versions.
  EXPECT_EQ(Text(EncodeBlobDescription(object)).find("versioned"), std::string::npos);
  EXPECT_NE(Text(EncodeBlobDescription(version)).find("\"versioned\":true"), std::string::npos);
  EXPECT_EQ(Text(EncodeBlobDescription(marker)).find("upload_id"), std::string::npos);
}

TEST(BlobDescriptionTest, KeyCopiesRoundTripAndNeedTheirCopies) {
  BlobDescription copies;
  copies.kind = Kind::kKeyCopies;
  copies.tenant_id = "0123456789abcdef0123456789abcdef";
  copies.last_modified = 1767225600123;
  copies.key_copies = {{"aa11", 2, Bytes(60, 0x01)}, {"bb22", 3, Bytes{0x00, 0xff, 0x10}}};
  auto decoded = DecodeBlobDescription(EncodeBlobDescription(copies));
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->kind, Kind::kKeyCopies);
  EXPECT_EQ(decoded->tenant_id, copies.tenant_id);
  EXPECT_EQ(decoded->last_modified, copies.last_modified);
  ASSERT_EQ(decoded->key_copies.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(decoded->key_copies[i].blob_id, copies.key_copies[i].blob_id);
    EXPECT_EQ(decoded->key_copies[i].tenant_key_version, copies.key_copies[i].tenant_key_version);
    EXPECT_EQ(decoded->key_copies[i].wrapped_data_key, copies.key_copies[i].wrapped_data_key);
  }
  for (
      const char* bad :
      {R"({"v":1,"kind":"key_copies","tenant_id":"t","last_modified":1,"key_copies":[]})",
       R"({"v":1,"kind":"key_copies","tenant_id":"t","last_modified":1})",
       R"({"v":1,"kind":"key_copies","tenant_id":"t","last_modified":1,"key_copies":[{"blob_id":"a","tenant_key_version":-1,"wrapped_data_key":""}]})",
       R"({"v":1,"kind":"key_copies","tenant_id":"t","last_modified":1,"key_copies":[{"blob_id":"a","tenant_key_version":1,"wrapped_data_key":"%%"}]})"}) {
    const std::string text = bad;
    EXPECT_THAT(DecodeBlobDescription(AsBytes(text)).status(), test_support::StatusIs(StatusCode::kCorruption)) << bad;
  }
}

// Tags are optional in an object's description (absent when there are none, as in descriptions
// written before tags existed), and always present in an attributes update.
TEST(BlobDescriptionTest, TagsAndAttributeUpdatesRoundTrip) {
  BlobDescription tagged = Object();
  tagged.sequence = 7;
  tagged.tags = {{"project", "alpha"}, {"classe", "confidentiel é"}};
  auto decoded = DecodeBlobDescription(EncodeBlobDescription(tagged));
  ASSERT_OK(decoded);
  ExpectSame(*decoded, tagged);
  EXPECT_EQ(decoded->tags, tagged.tags);
  const std::string untagged = Text(EncodeBlobDescription(Object()));
  EXPECT_EQ(untagged.find("\"tags\""), std::string::npos) << untagged;
  EXPECT_TRUE(DecodeBlobDescription(EncodeBlobDescription(Object()))->tags.empty());

  BlobDescription update;
  update.kind = Kind::kObjectUpdate;
  update.tenant_id = "t-5f3a";
  update.bucket_id = 42;
  update.bucket_name = "dossiers-pme";
  update.key = "prêts/2026/bilan.pdf";
  update.object_id = "0b1c2d3e4f5a6b7c";
  update.sequence = 1796342400123456;
  update.last_modified = 1796342400123;
  update.tags = {{"etat", "archive"}};
  auto got = DecodeBlobDescription(EncodeBlobDescription(update));
  ASSERT_OK(got);
  EXPECT_EQ(got->kind, Kind::kObjectUpdate);
  ExpectSame(*got, update);
  EXPECT_EQ(got->sequence, update.sequence);
  EXPECT_EQ(got->tags, update.tags);
  // Removing every tag is an update too: the empty set is written, not left out.
  update.tags.clear();
  const std::string cleared = Text(EncodeBlobDescription(update));
  EXPECT_NE(cleared.find("\"tags\""), std::string::npos) << cleared;
  EXPECT_TRUE(DecodeBlobDescription(EncodeBlobDescription(update))->tags.empty());
  // An update without its tags or its sequence is refused.
  for (const char* field : {"tags", "seq", "object_id"}) {
    nlohmann::json j = nlohmann::json::parse(Text(EncodeBlobDescription(update)));
    j.erase(field);
    const std::string text = j.dump();
    EXPECT_THAT(DecodeBlobDescription(AsBytes(text)), StatusIs(StatusCode::kCorruption)) << field;
  }
}

TEST(BlobDescriptionTest, KeysAndMetadataThatAreNotUtf8SurviveUnchanged) {
  BlobDescription d = Object();
  d.key = std::string("latin1-\xe9t\xe9.pdf");
  d.attributes["x-amz-meta-note"] = std::string("\xff\xfe raw");
  auto decoded = DecodeBlobDescription(EncodeBlobDescription(d));
  ASSERT_OK(decoded);
  ExpectSame(*decoded, d);
}

TEST(BlobDescriptionTest, AnythingButAKnownCompleteDescriptionIsCorruption) {
  const std::string good = Text(EncodeBlobDescription(Object()));
  auto refused = [](const std::string& text) {
    auto decoded = DecodeBlobDescription(AsBytes(text));
    return decoded.ok() ? StatusCode::kOk : decoded.status().code();
  };
  EXPECT_EQ(refused(""), StatusCode::kCorruption);
  EXPECT_EQ(refused("[]"), StatusCode::kCorruption);
  EXPECT_EQ(refused(good.substr(0, good.size() - 1)), StatusCode::kCorruption);

  auto with = [&](const std::string& field, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(good);
    if (value.empty()) {
      j.erase(field);
    } else {
      j[field] = nlohmann::json::parse(value);
    }
    return j.dump();
  };
  EXPECT_EQ(refused(with("v", "2")), StatusCode::kCorruption);
  EXPECT_EQ(refused(with("kind", "\"tombstone\"")), StatusCode::kCorruption);
  for (const char* field : {"tenant_id", "bucket_id", "key", "size", "etag", "object_id", "attributes"}) {
    SCOPED_TRACE(field);
    EXPECT_EQ(refused(with(field, "")), StatusCode::kCorruption);
  }
  EXPECT_EQ(refused(with("size", "\"12\"")), StatusCode::kCorruption);
  EXPECT_EQ(refused(with("size", "-1")), StatusCode::kCorruption);
  EXPECT_EQ(refused(with("attributes", "{\"content-type\": \"x\"}")), StatusCode::kCorruption);  // not the text form
}

TEST(BlobDescriptionTest, PartNumbersAndManifestsAreChecked) {
  BlobDescription part = Object();
  part.kind = Kind::kPart;
  part.upload_id = "u";
  for (uint32_t bad : {0u, 10001u}) {
    part.part_number = bad;
    EXPECT_THAT(DecodeBlobDescription(EncodeBlobDescription(part)), StatusIs(StatusCode::kCorruption)) << bad;
  }
  BlobDescription manifest = Object();
  manifest.kind = Kind::kManifest;
  manifest.upload_id = "u";
  EXPECT_THAT(DecodeBlobDescription(EncodeBlobDescription(manifest)), StatusIs(StatusCode::kCorruption));
}

}  // namespace
}  // namespace coffre::catalog
