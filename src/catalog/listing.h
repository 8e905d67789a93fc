#pragma once

// Key-range arithmetic for listings. Keys compare as unsigned bytes (SQLite's BINARY collation
// on text, std::string's operator<), which is S3's "UTF-8 binary order".
//
// A listing is a walk along the primary-key index that never scans what it will not return:
// it starts with one seek (StartBound), and each time a key rolls up into a common prefix it
// seeks past every key under that prefix (PrefixSuccessor), so a page of N common prefixes costs
// about N seeks whatever the number of keys beneath them.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace coffre::catalog {

// The smallest string greater than every string that starts with `prefix`: the prefix with its
// trailing 0xFF bytes dropped and its last byte incremented. nullopt if there is none (an empty
// prefix, or one made only of 0xFF bytes), i.e. nothing sorts after the prefix's keys.
std::optional<std::string> PrefixSuccessor(std::string_view prefix);

// If `key` (which starts with `prefix`) rolls up into a common prefix, the length of that common
// prefix: up to and including the first `delimiter` after `prefix`.
std::optional<size_t> CommonPrefixLength(std::string_view key, std::string_view prefix, std::string_view delimiter);

struct SeekBound {
  std::string key;
  bool inclusive = false;  // key >= bound (else key > bound)
};

// Where a listing of `prefix` resumes when everything <= `marker` was already returned. A marker
// inside a common prefix (e.g. a page that ended on the prefix "a/", or on a key under it) skips
// the whole prefix, so it is not returned twice. nullopt: nothing can follow the marker.
std::optional<SeekBound> StartBound(std::string_view prefix, std::string_view delimiter, std::string_view marker);

}  // namespace coffre::catalog
