#pragma once

#include <string_view>

namespace coffre::s3 {

// S3's rules for a new bucket's name: 3-63 characters of lower-case letters, digits, '.' and '-';
// starting and ending with a letter or digit; no "..", ".-" or "-."; not shaped like an IPv4
// address; none of the prefixes and suffixes AWS reserves (xn--, sthree-, -s3alias, --ol-s3).
bool IsValidBucketName(std::string_view name);

}  // namespace coffre::s3
