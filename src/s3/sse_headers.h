#pragma once

// The server-side encryption headers of a request, checked as S3 checks them, before anything is
// read or written. Every object here is encrypted under its tenant's keys, which S3 calls SSE-S3
// (AES256): x-amz-server-side-encryption: AES256 is what a PUT, a CopyObject or a
// CreateMultipartUpload gets anyway. The KMS methods (named tenant keys) and customer-provided
// keys (SSE-C) are S3's and not yet Coffre's: a well-formed request for them is NotImplemented
// where it would store an object, and, where it would read one, S3's answer for an object that
// was not stored with them; a malformed one gets S3's 400 in every case.

#include <optional>
#include <string_view>

#include "coffre/s3/error.h"
#include "coffre/s3/request.h"
#include "router.h"

namespace coffre::s3 {

std::optional<Error> CheckEncryptionHeaders(const HttpRequestView& request, Operation op);

// NotImplemented for a KMS method ("aws:kms", "aws:kms:dsse"), wherever one is asked for: a PUT's
// header or a bucket's default encryption.
Error KmsNotImplemented(std::string_view method);

}  // namespace coffre::s3
