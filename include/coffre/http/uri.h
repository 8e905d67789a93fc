#pragma once

// A request-target (origin form: an absolute path, then '?' and a query) taken apart and
// percent-decoded. Pure functions of strings, shared by the S3 gateway and the admin API so that
// both read a target the same way.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::http {

struct RequestTarget {
  std::string_view path;   // up to the first '?', as received
  std::string_view query;  // after it, as received; empty when there is none
};
RequestTarget SplitTarget(std::string_view target);

// How '+' reads in a percent-encoded component: as itself (RFC 3986: S3 paths and SigV4 queries
// write a space as %20) or as a space (application/x-www-form-urlencoded, as HTML forms send).
enum class PlusSign { kLiteral, kSpace };

// Percent-decodes one component (either case of hex digits); nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view in, PlusSign plus = PlusSign::kLiteral);

// A query's parameters, decoded, in order of appearance; repeated names are all kept. A parameter
// without '=' has an empty value, and empty pieces ("a=1&&b=2") carry nothing. nullopt on a
// malformed escape.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
std::optional<QueryParams> ParseQuery(std::string_view query, PlusSign plus = PlusSign::kLiteral);

// The segments of an absolute path, as received (not decoded): "/a/b" is {"a", "b"}, "/" is {""}
// and "/a/" is {"a", ""}. Empty when the path does not start with '/'.
std::vector<std::string_view> SplitPath(std::string_view path);

// What MatchPathTemplate captured, by the names written in the template's braces.
using PathParams = std::map<std::string, std::string, std::less<>>;

// Matches `path` against a template such as "/tenants/{tenant}/keys": a literal segment matches
// itself exactly, a "{name}" segment captures any non-empty segment (not decoded). So an empty
// segment ("//", a trailing '/') matches no template. nullopt when the path does not match.
std::optional<PathParams> MatchPathTemplate(std::string_view path_template, std::string_view path);

}  // namespace coffre::http
