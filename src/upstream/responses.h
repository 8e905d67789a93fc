#pragma once

// The upstream's answers read into values: S3 error documents mapped to a Status, and the XML
// results of listing and multipart operations. Pure functions of strings, tested without a socket.

#include <string>
#include <string_view>

#include "coffre/common/status.h"
#include "coffre/upstream/s3_client.h"

namespace coffre::upstream {

// The <Code> and <Message> of an S3 error document; empty when the body is not one (HEAD answers
// carry no body, and a proxy's error page is not XML).
struct S3ErrorBody {
  std::string code;
  std::string message;
};
S3ErrorBody ParseErrorBody(std::string_view body);

// Whether an answer is worth the same request again: 500, 502, 503, 504, or S3's own codes for
// "slow down" and "you were too slow" (SlowDown, RequestTimeout), whatever status carries them.
bool IsRetryableAnswer(unsigned http_status, std::string_view s3_code);

// The Status for an error answer: NotFound (404), PermissionDenied (401, 403), Unavailable (5xx but
// 501, SlowDown, RequestTimeout), OutOfRange (416), FailedPrecondition (409 and 412 but
// OperationAborted, redirects to another endpoint), Aborted (OperationAborted), NoSpace (507,
// quota exceeded), InvalidArgument (other 4xx), Internal (anything else). The message names the
// operation (`what`, e.g. "GET key"), the HTTP status, and the upstream's code and message.
Status ErrorStatus(std::string_view what, unsigned http_status, const S3ErrorBody& error);

// <ListBucketResult> of ListObjectsV2.
Result<ListPage> ParseListObjectsV2(std::string_view body);
// <InitiateMultipartUploadResult>: the upload id.
Result<std::string> ParseUploadId(std::string_view body);
// <CompleteMultipartUploadResult>: the ETag. S3 may answer 200 and still fail, with an <Error>
// document in the body (sent after its keep-alive whitespace); that becomes its Status.
Result<std::string> ParseCompleteResult(std::string_view what, std::string_view body);
// <CompleteMultipartUpload> listing the parts.
std::string CompleteMultipartBody(const std::vector<CompletedPart>& parts);

}  // namespace coffre::upstream
