#pragma once

// Pieces of the object handlers shared with the multipart handlers (copy sources, conditions).

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "coffre/s3/range.h"
#include "request_context.h"

namespace coffre::s3 {

struct CopySource {
  catalog::Bucket bucket;
  std::string key;
  std::unique_ptr<service::ObjectReader> reader;
  bool version_named = false;  // the source names a version (?versionId=)
};

// Every object is encrypted at rest under one of its tenant's keys, and the answers about an
// object say how, as AWS's do (sse_headers.h): aws:kms with the key's ARN for an object asked for
// as aws:kms or under a named key, AES256 for the others.
void AddEncryptionHeaders(const RequestContext& ctx, const service::EncryptionReport& report, Headers& headers);
// x-amz-server-side-encryption-context as the request sent it, on the answer of a write stored as
// aws:kms, as S3 echoes it.
void AddEncryptionContextHeader(const RequestContext& ctx, const service::PutResult& result, Headers& headers);
// The named key (ObjectService::ResolveEncryptionKey) a request that stores an object asks for, by
// its headers or its bucket's default encryption, "" for the tenant's default key; the attributes
// that report the object's encryption are set among `attributes`, and, with `reported`, the
// headers that say so are added to it. Blocking.
service::SResult<std::string> ChooseObjectKey(RequestContext& ctx, const catalog::Bucket& bucket,
                                              catalog::Attributes& attributes, Headers* reported = nullptr);

// Parses x-amz-copy-source, resolves the source within the caller's tenant, opens it and checks
// the x-amz-copy-source-if-* conditions.
asio::awaitable<Expected<CopySource, Error>> OpenCopySource(RequestContext& ctx);
// Copies the reader's (range of) plaintext into the writer just begun, `chunk` bytes a read, and
// commits it; the S3 error of whichever step fails. Blocking.
Expected<service::PutResult, Error> CopyAndCommit(service::ObjectReader& reader,
                                                  service::SResult<std::unique_ptr<service::ObjectWriter>> writer,
                                                  size_t chunk, const service::CommitOptions& options);
// If-Match / If-None-Match / If-(Un)Modified-Since with an optional header prefix
// ("x-amz-copy-source-"): PreconditionFailed, NotModified, or nothing.
std::optional<Error> EvaluateReadConditions(const RequestContext& ctx, const service::ObjectInfo& info,
                                            std::string_view prefix);
Expected<catalog::WriteCondition, Error> WriteConditionFromHeaders(const RequestContext& ctx);
// A decimal request parameter (query or header): `fallback` when absent, at most `max`;
// InvalidArgument naming `what` when it is no integer.
Expected<uint32_t, Error> ParseNumber(const std::optional<std::string>& v, uint32_t fallback, uint32_t max,
                                      std::string_view what);
// The x-amz-checksum-* attributes, named as the XML elements that carry them ("ChecksumCRC32").
std::map<std::string, std::string> ChecksumElements(const catalog::Attributes& attributes);
Headers PutResultHeaders(const RequestContext& ctx, const service::PutResult& result);
// How the object's checksums were made: "FULL_OBJECT" (a single PUT's, or a multipart object's
// of the whole) or "COMPOSITE" (of its parts' checksums).
std::string ChecksumTypeOf(const service::ObjectInfo& info);

// What the headers of a PutObject or an UploadPart ask for, checked: every error those answer
// before reading the body. Pure functions of the request, so the authenticating worker runs them
// too, and begins the writer when they pass (RequestContext::begun_writer).
struct PutRequest {
  catalog::Attributes attributes;
  catalog::Tags tags;
  ChecksumPlan plan;
  catalog::WriteCondition condition;
  catalog::ObjectLock lock;
};
Expected<PutRequest, Error> ParsePutRequest(const RequestContext& ctx);
struct UploadPartRequest {
  uint32_t part_number = 0;
  std::string upload_id;
  ChecksumPlan plan;
};
Expected<UploadPartRequest, Error> ParseUploadPartRequest(const RequestContext& ctx);
// Begin the writer of a parsed PutObject (wraps a new data key) or UploadPart (unwraps the
// upload's); blocking. `req.attributes` is moved from.
service::SResult<std::unique_ptr<service::ObjectWriter>> BeginPutWriter(RequestContext& ctx,
                                                                        const catalog::Bucket& bucket, PutRequest& req);
service::SResult<std::unique_ptr<service::ObjectWriter>> BeginPartWriter(RequestContext& ctx,
                                                                         const catalog::Bucket& bucket,
                                                                         const UploadPartRequest& req);
// The declared payload length is there (S3 needs it up front) and within a single PUT's limit.
std::optional<Error> CheckDeclaredPayloadLength(const RequestContext& ctx);
// The retention and legal hold the x-amz-object-lock-* headers of a write ask for (empty when
// none): InvalidArgument when a mode comes without a date or the other way round, or a value is
// not one S3 knows. Whether the bucket allows them, and the date is ahead, the service checks.
Expected<catalog::ObjectLock, Error> ObjectLockFromHeaders(const RequestContext& ctx);
// x-amz-bypass-governance-retention: true.
bool BypassesGovernance(const RequestContext& ctx);
// x-amz-object-lock-mode, -retain-until-date and -legal-hold of a version, those it has.
void AddObjectLockHeaders(const catalog::ObjectLock& lock, Headers& headers);
// Get/PutObjectLockConfiguration, Get/PutObjectRetention and Get/PutObjectLegalHold.
asio::awaitable<void> HandleObjectLockOperation(RequestContext& ctx, const catalog::Bucket& bucket);

// InvalidArgument unless `id` can name a version (service::IsVersionId).
std::optional<Error> CheckVersionId(std::string_view id);
// The version the request names (versionId): "" when none. InvalidArgument when it names none
// that can exist.
Expected<std::string, Error> RequestedVersion(const Query& query);
// The byte range of part `part_number` (partNumber query parameter).
Expected<ByteRange, Error> SelectPart(const service::ObjectInfo& info, std::string_view part_number);

}  // namespace coffre::s3
