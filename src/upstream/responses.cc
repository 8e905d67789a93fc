#include "upstream/responses.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "coffre/common/ascii.h"
#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"

namespace coffre::upstream {
namespace {

using boost::property_tree::ptree;

// An upstream message is quoted in our Status, which reaches logs: keep it to a line.
constexpr size_t kMaxQuotedMessage = 300;

std::optional<ptree> ParseXml(std::string_view body) {
  // Whitespace may precede the document: S3 sends some while a CompleteMultipartUpload runs.
  std::istringstream in{std::string(TrimWhitespace(body))};
  ptree tree;
  try {
    boost::property_tree::read_xml(in, tree);
  } catch (const boost::property_tree::ptree_error&) {
    return std::nullopt;
  }
  return tree;
}

std::string ChildText(const ptree& node, const char* name) { return node.get<std::string>(name, ""); }

S3ErrorBody ErrorOf(const ptree& error) {
  std::string message = ChildText(error, "Message");
  if (message.size() > kMaxQuotedMessage) {
    message.resize(kMaxQuotedMessage);
    message += "...";
  }
  return {ChildText(error, "Code"), std::move(message)};
}

StatusCode CodeForClientError(unsigned http_status, std::string_view s3_code) {
  if (s3_code == "OperationAborted") {
    return StatusCode::kAborted;
  }
  switch (http_status) {
    case 401:
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
    case 412:
      return StatusCode::kFailedPrecondition;
    case 416:
      return StatusCode::kOutOfRange;
    default:
      return StatusCode::kInvalidArgument;
  }
}

StatusCode CodeFor(unsigned http_status, std::string_view s3_code) {
  if (IsRetryableAnswer(http_status, s3_code)) {
    return StatusCode::kUnavailable;
  }
  if (http_status == 507 || s3_code == "QuotaExceeded") {
    return StatusCode::kNoSpace;
  }
  if (http_status >= 400 && http_status < 500) {
    return CodeForClientError(http_status, s3_code);
  }
  // 301/307: the bucket lives at another endpoint or region, a configuration error.
  if (http_status >= 300 && http_status < 400) {
    return StatusCode::kFailedPrecondition;
  }
  return StatusCode::kInternal;
}

}  // namespace

S3ErrorBody ParseErrorBody(std::string_view body) {
  const std::optional<ptree> tree = ParseXml(body);
  if (!tree) {
    return {};
  }
  const boost::optional<const ptree&> error = tree->get_child_optional("Error");
  return error ? ErrorOf(*error) : S3ErrorBody{};
}

bool IsRetryableAnswer(unsigned http_status, std::string_view s3_code) {
  return http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504 ||
         s3_code == "SlowDown" || s3_code == "RequestTimeout";
}

Status ErrorStatus(std::string_view what, unsigned http_status, const S3ErrorBody& error) {
  std::string message = "upstream " + std::string(what) + ": HTTP " + std::to_string(http_status);
  if (!error.code.empty()) {
    message += " " + error.code;
  }
  if (!error.message.empty()) {
    message += ": " + error.message;
  }
  return Status(CodeFor(http_status, error.code), std::move(message));
}

Result<ListPage> ParseListObjectsV2(std::string_view body) {
  const std::optional<ptree> tree = ParseXml(body);
  const boost::optional<const ptree&> result = tree ? tree->get_child_optional("ListBucketResult") : boost::none;
  if (!result) {
    return Status::Internal("upstream ListObjectsV2: the answer is not a ListBucketResult");
  }
  ListPage page;
  for (const auto& [name, node] : *result) {
    if (name != "Contents") {
      continue;
    }
    ListedObject object;
    object.key = ChildText(node, "Key");
    const std::optional<uint64_t> size = ParseDecimal(ChildText(node, "Size"));
    const std::optional<UnixMillis> modified = ParseUtcTime(ChildText(node, "LastModified"));
    if (object.key.empty() || !size || !modified) {
      return Status::Internal("upstream ListObjectsV2: an entry lacks a key, a size or a modification time");
    }
    object.size = *size;
    object.last_modified = *modified;
    page.objects.push_back(std::move(object));
  }
  if (ChildText(*result, "IsTruncated") == "true") {
    page.next_continuation_token = ChildText(*result, "NextContinuationToken");
    if (page.next_continuation_token.empty()) {
      return Status::Internal("upstream ListObjectsV2: a truncated page without a continuation token");
    }
  }
  return page;
}

Result<std::string> ParseUploadId(std::string_view body) {
  const std::optional<ptree> tree = ParseXml(body);
  std::string upload_id = tree ? tree->get<std::string>("InitiateMultipartUploadResult.UploadId", "") : "";
  if (upload_id.empty()) {
    return Status::Internal("upstream CreateMultipartUpload: the answer names no upload id");
  }
  return upload_id;
}

Result<std::string> ParseCompleteResult(std::string_view what, std::string_view body) {
  const std::optional<ptree> tree = ParseXml(body);
  if (tree) {
    if (const boost::optional<const ptree&> error = tree->get_child_optional("Error")) {
      const S3ErrorBody parsed = ErrorOf(*error);
      // The real status of an error sent after a 200 is unknown; its code says what it was.
      const unsigned status = parsed.code == "InternalError" || parsed.code == "SlowDown" ? 500 : 400;
      return ErrorStatus(what, status, parsed);
    }
  }
  const boost::optional<const ptree&> result =
      tree ? tree->get_child_optional("CompleteMultipartUploadResult") : boost::none;
  if (!result) {
    return Status::Internal("upstream " + std::string(what) + ": the answer is not a CompleteMultipartUploadResult");
  }
  // Ceph RGW 16 answers an empty <ETag> (the object's ETag is right all the same): the result
  // element is what says the upload completed.
  return result->get<std::string>("ETag", "");
}

std::string CompleteMultipartBody(const std::vector<CompletedPart>& parts) {
  ptree parts_tree;
  for (const CompletedPart& part : parts) {
    ptree node;
    node.put("PartNumber", part.part_number);
    node.put("ETag", part.etag);
    parts_tree.add_child("Part", node);
  }
  ptree document;
  document.add_child("CompleteMultipartUpload", parts_tree);
  std::ostringstream out;
  boost::property_tree::write_xml(out, document);
  return out.str();
}

}  // namespace coffre::upstream
