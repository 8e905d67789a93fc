#pragma once

// S3's rules for object and bucket tags, applied at the protocol edge: the tag sets of
// x-amz-tagging (PutObject, CopyObject, CreateMultipartUpload), PutObjectTagging and
// PutBucketTagging. The service and the catalog store whatever set passes here.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/common/status.h"
#include "coffre/s3/error.h"

namespace coffre::s3 {

inline constexpr size_t kMaxObjectTags = 10;
inline constexpr size_t kMaxBucketTags = 50;

// Checks a tag set as a request body gave it (document order): at most `max_tags` tags (objects:
// 400 BadRequest; buckets: InvalidTag), keys unique (InvalidTag), each key of 1 to 128 and each
// value of at most 256 Unicode characters of UTF-8, made of letters, digits, spaces and
// `_ . : / = + - @`, no key beginning with `aws:` (InvalidTag).
Expected<catalog::Tags, Error> CheckTagSet(const std::vector<std::pair<std::string, std::string>>& tags,
                                           size_t max_tags);

// The tag set of an x-amz-tagging header: URL query parameters (`k1=v1&k2=v2`, '+' a space; a
// parameter without '=' has an empty value), checked as CheckTagSet does for an object, except
// that a malformed escape or a repeated key is InvalidArgument, as S3 answers for this header.
Expected<catalog::Tags, Error> ParseTaggingHeader(std::string_view header);

}  // namespace coffre::s3
