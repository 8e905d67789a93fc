// Fuzzes every S3 XML request-body parser with the same input, and checks the documented limits
// of what they return (part numbers 1..10000, at most 1000 objects to delete).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "coffre/s3/xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);

  auto parts = coffre::s3::ParseCompleteMultipartUpload(xml);
  if (parts.ok()) {
    if (parts->empty()) {
      std::abort();
    }
    for (const auto& part : *parts) {
      if (part.part_number < 1 || part.part_number > 10000) {
        std::abort();
      }
    }
  }

  auto deletes = coffre::s3::ParseDeleteObjects(xml);
  if (deletes.ok() && (deletes->objects.empty() || deletes->objects.size() > coffre::s3::kMaxDeleteObjects)) {
    std::abort();
  }

  (void)coffre::s3::ParseCreateBucketConfiguration(xml);
  (void)coffre::s3::ParseTagging(xml);
  (void)coffre::s3::ParseServerSideEncryptionConfiguration(xml);
  auto versioning = coffre::s3::ParseVersioningConfiguration(xml);
  if (versioning.ok() && versioning->status != "Enabled" && versioning->status != "Suspended") {
    std::abort();
  }
  auto lock = coffre::s3::ParseObjectLockConfiguration(xml);
  if (lock.ok() && !lock->mode.empty() && (lock->days == 0) == (lock->years == 0)) {
    std::abort();
  }
  auto retention = coffre::s3::ParseRetention(xml);
  if (retention.ok() && !retention->mode.empty() && retention->mode != "GOVERNANCE" &&
      retention->mode != "COMPLIANCE") {
    std::abort();
  }
  auto lifecycle = coffre::s3::ParseLifecycleConfiguration(xml);
  if (lifecycle.ok()) {
    // What is accepted is written back, and reads back the same.
    const std::string doc = coffre::s3::LifecycleConfigurationDocument(*lifecycle);
    auto again = coffre::s3::ParseLifecycleConfiguration(doc);
    if (!again.ok() || coffre::s3::LifecycleConfigurationDocument(*again) != doc) std::abort();
  }
  auto hold = coffre::s3::ParseLegalHold(xml);
  if (hold.ok() && *hold != "ON" && *hold != "OFF") {
    std::abort();
  }

  // What the writers make of hostile text must stay well-formed: escaping is total.
  const std::string escaped = coffre::s3::XmlEscape(xml);
  if (escaped.find('<') != std::string::npos || escaped.find('>') != std::string::npos) {
    std::abort();
  }
  (void)coffre::s3::UrlEncodeKey(xml);
  return 0;
}
