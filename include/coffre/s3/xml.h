#pragma once

// S3's XML: the request bodies Coffre parses and the response documents it writes.
//
// Parsers take an untrusted body (its size is limited by the caller) and answer kMalformedXML for
// anything that is not well-formed or does not match the schema. They accept what the SDKs send
// (the S3 xmlns or none, namespace prefixes, indentation, an XML declaration, comments, CDATA) and
// refuse every DOCTYPE, entity declaration and undeclared entity reference, so no document can
// expand entities (billion laughs) or reach external resources (XXE).
//
// Writers follow S3's documents (element names and order as in the S3 API reference and S3's own
// responses): the declaration line, then the root element (with the S3 xmlns where S3 puts it: on
// every root but <Error>) and no indentation. All text is
// escaped, and the output is always well-formed XML 1.0: characters XML 1.0 cannot carry (C0
// controls other than TAB/LF/CR, invalid UTF-8, U+FFFE/U+FFFF) are written as U+FFFD. S3 clients
// that must see such keys exactly ask for encoding-type=url, which every listing struct below
// supports through its `url_encoding` flag.
//
// Conventions for the structs below: ETags are given bare (no quotes; the writer adds them), times
// are system_clock time points written with FormatIso8601, keys and prefixes are given raw (never
// pre-encoded), and an empty Owner::display_name omits <DisplayName>.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/s3/error.h"
#include "coffre/service/lifecycle.h"

namespace coffre::s3 {

inline constexpr std::string_view kS3XmlNamespace = "http://s3.amazonaws.com/doc/2006-03-01/";

using TimePoint = std::chrono::system_clock::time_point;

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

struct CompletedPart {
  uint32_t part_number = 0;  // 1..10000
  std::string etag;          // as sent, surrounding whitespace and quotes stripped
  // Checksum elements of the part as sent, by element name ("ChecksumCRC32", "ChecksumSHA256", ...).
  std::map<std::string, std::string> checksums;
};

// <CompleteMultipartUpload><Part><PartNumber/><ETag/><ChecksumCRC32/>...</Part>...</...>.
// The parts are returned in document order; order and duplicates are for the handler to judge
// (InvalidPartOrder). Errors: kMalformedXML (not XML, wrong root, no Part, a Part without exactly
// one PartNumber and one ETag, PartNumber not an integer); kInvalidArgument (PartNumber an integer
// outside 1..10000).
Expected<std::vector<CompletedPart>, Error> ParseCompleteMultipartUpload(std::string_view xml);

struct DeleteRequest {
  bool quiet = false;
  // (key, version id) in document order. Keys are entity-decoded and kept exactly (no trimming);
  // a present-but-empty <VersionId/> is an empty string, not nullopt.
  std::vector<std::pair<std::string, std::optional<std::string>>> objects;
};

inline constexpr size_t kMaxDeleteObjects = 1000;

// <Delete><Quiet>true</Quiet><Object><Key/><VersionId/></Object>...</Delete>.
// Errors: kMalformedXML (not XML, wrong root, no Object or more than 1000, an Object without
// exactly one Key, Quiet not a boolean).
Expected<DeleteRequest, Error> ParseDeleteObjects(std::string_view xml);

// <CreateBucketConfiguration><LocationConstraint>eu-west-3</LocationConstraint></...>.
// Returns the trimmed LocationConstraint, "" when absent. An empty body is the caller's case
// (S3 allows it); here it is kMalformedXML.
Expected<std::string, Error> ParseCreateBucketConfiguration(std::string_view xml);

// <Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging> (PutObjectTagging,
// PutBucketTagging): the tags as (key, value) in document order, exactly as sent; their rules
// (count, lengths, duplicates) are the caller's. Errors: kMalformedXML (not XML, wrong root, not
// exactly one TagSet, a Tag without exactly one Key and one Value, a Key or Value holding elements).
Expected<std::vector<std::pair<std::string, std::string>>, Error> ParseTagging(std::string_view xml);

// A bucket's default encryption, as ServerSideEncryptionConfiguration gives it.
struct BucketEncryption {
  std::string algorithm = "AES256";       // SSEAlgorithm: "AES256", "aws:kms" or "aws:kms:dsse"
  std::optional<std::string> kms_key_id;  // KMSMasterKeyID, trimmed
  bool bucket_key_enabled = false;
};

// <ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm/>
// <KMSMasterKeyID/></ApplyServerSideEncryptionByDefault><BucketKeyEnabled/></Rule>
// </ServerSideEncryptionConfiguration> (PutBucketEncryption). Errors: kMalformedXML (not XML,
// wrong root, not exactly one Rule, a Rule without exactly one ApplyServerSideEncryptionByDefault,
// no SSEAlgorithm or one S3 does not have, a BucketKeyEnabled other than true or false). Whether
// the algorithm and the key id go together is the caller's to judge.
Expected<BucketEncryption, Error> ParseServerSideEncryptionConfiguration(std::string_view xml);

struct BucketVersioning {
  std::string status;       // "Enabled" or "Suspended"
  bool mfa_delete = false;  // MfaDelete: Enabled
};

// <VersioningConfiguration><Status/><MfaDelete/></VersioningConfiguration> (PutBucketVersioning).
// Errors: kMalformedXML (not XML, wrong root, a Status other than one Enabled or Suspended, an
// MfaDelete other than Enabled or Disabled).
Expected<BucketVersioning, Error> ParseVersioningConfiguration(std::string_view xml);

// An Object Lock configuration (Put/GetObjectLockConfiguration): enabled, and a default retention
// (mode, and days or years) when it has a Rule.
struct ObjectLockRule {
  std::string mode;  // "" without a Rule; GOVERNANCE or COMPLIANCE
  uint32_t days = 0;
  uint32_t years = 0;
};
// <ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>
// <Mode/><Days/>|<Years/></DefaultRetention></Rule></ObjectLockConfiguration>. Errors:
// kMalformedXML (not XML, ObjectLockEnabled other than Enabled, a Rule without DefaultRetention,
// an unknown Mode, both or neither of Days and Years, a period that is no integer);
// kInvalidArgument (a period not above zero, or above 100 years).
Expected<ObjectLockRule, Error> ParseObjectLockConfiguration(std::string_view xml);

// <Retention><Mode/><RetainUntilDate/></Retention> (PutObjectRetention): both, or neither (the
// retention removed). Errors: kMalformedXML (not XML, one without the other, an unknown mode, a
// date that is not ISO 8601).
struct RetentionSetting {
  std::string mode;  // "" when removed
  UnixMillis retain_until = 0;
};
Expected<RetentionSetting, Error> ParseRetention(std::string_view xml);

// <LegalHold><Status>ON|OFF</Status></LegalHold> (PutObjectLegalHold): the status. Errors:
// kMalformedXML (not XML, a missing or unknown Status).
Expected<std::string, Error> ParseLegalHold(std::string_view xml);

// <LifecycleConfiguration><Rule>...</Rule>...</LifecycleConfiguration>
// (PutBucketLifecycleConfiguration), checked as S3 checks it: kMalformedXML (not XML, no rule or
// more than 1000, an unknown Status, a filter of two kinds or both a Filter and a rule-level Prefix,
// an Expiration with none or several of Days, Date and ExpiredObjectDeleteMarker, a number that
// is not one); kInvalidArgument (a period not above zero, a Date not at midnight UTC, an ID
// longer than 255 characters or used twice, NewerNoncurrentVersions outside 1..100);
// kInvalidRequest (a rule without action (an Expiration of ExpiredObjectDeleteMarker false is one),
// AbortIncompleteMultipartUpload or ExpiredObjectDeleteMarker with a tag filter); kInvalidStorageClass (any Transition:
// there is one storage class). A rule without ID gets a random one.
Expected<service::LifecycleConfiguration, Error> ParseLifecycleConfiguration(std::string_view xml);

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// encoding-type=url as S3 applies it to listed keys and prefixes: form encoding (as Java's
// URLEncoder: A-Z a-z 0-9 . - * _ kept, space as '+', every other byte %XX in upper case) except
// that '/' is kept. So "a b+c/~" becomes "a+b%2Bc/%7E". Clients decode it with a form decoder
// (botocore unquote_plus, Go QueryUnescape, Java URLDecoder), under which both '+' and "%20"
// mean space; '+' is what S3 sends.
std::string UrlEncodeKey(std::string_view key);

// Escapes text for an element's content: & < > " ' as entities, CR as &#13; (so it survives
// end-of-line normalisation), characters XML 1.0 cannot carry as U+FFFD.
std::string XmlEscape(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

using XmlAttribute = std::pair<std::string_view, std::string_view>;

// Writes one XML document in order, escaping all text and attribute values. Element and attribute
// names are trusted (they come from code, never from a request). Not thread-safe.
class XmlWriter {
 public:
  // Starts the document with S3's declaration line: <?xml version="1.0" encoding="UTF-8"?>\n
  XmlWriter();

  void StartElement(std::string_view name, std::initializer_list<XmlAttribute> attributes = {});
  // StartElement with xmlns="http://s3.amazonaws.com/doc/2006-03-01/", for S3's root elements.
  void StartS3Root(std::string_view name);
  void EndElement();

  // Character data inside the element last started.
  void Text(std::string_view text);
  // <name>text</name>, also when text is empty (S3 writes <Prefix></Prefix>).
  void Element(std::string_view name, std::string_view text);
  void UintElement(std::string_view name, uint64_t value);
  void BoolElement(std::string_view name, bool value);   // "true"/"false"
  void TimeElement(std::string_view name, TimePoint t);  // FormatIso8601
  // <ETag>&quot;etag&quot;</ETag>
  void ETagElement(std::string_view etag);
  // <name attr="..."/>
  void EmptyElement(std::string_view name, std::initializer_list<XmlAttribute> attributes = {});

  // Closes every element still open and returns the document.
  std::string Finish();

 private:
  void OpenTag(std::string_view name, std::initializer_list<XmlAttribute> attributes);

  std::string out_;
  std::vector<std::string> open_;
};

// ---------------------------------------------------------------------------------------------
// Response documents
// ---------------------------------------------------------------------------------------------

struct Owner {
  std::string id;
  std::string display_name;  // empty: <DisplayName> omitted
};

// <Error><Code/><Message/><Resource/><RequestId/><HostId/></Error> (no xmlns, as S3). Message is
// the error's effective message; Resource is omitted when empty.
std::string ErrorDocument(const Error& error, std::string_view request_id, std::string_view host_id);

struct BucketEntry {
  std::string name;
  TimePoint creation_date;
};

struct ListAllMyBucketsResult {
  Owner owner;
  std::vector<BucketEntry> buckets;
};

std::string ListAllMyBucketsDocument(const ListAllMyBucketsResult& result);

// One <Contents> of ListObjects / ListObjectsV2.
struct ObjectEntry {
  std::string key;
  TimePoint last_modified;
  std::string etag;  // bare
  uint64_t size = 0;
  std::string storage_class = "STANDARD";
  std::optional<std::string> checksum_algorithm;  // "CRC32", "CRC64NVME", ...
  std::optional<std::string> checksum_type;       // "FULL_OBJECT" / "COMPOSITE"
  std::optional<Owner> owner;                     // V2: set only for fetch-owner=true; V1: always
};

struct ListObjectsV2Result {
  std::string bucket;
  std::string prefix;     // always written
  std::string delimiter;  // written when non-empty
  uint64_t max_keys = 1000;
  bool is_truncated = false;
  std::optional<std::string> continuation_token;       // echoed when the request had one
  std::optional<std::string> next_continuation_token;  // set when truncated
  std::optional<std::string> start_after;              // echoed when the request had one
  // encoding-type=url: Prefix, Delimiter, StartAfter, Key and CommonPrefixes/Prefix are written
  // through UrlEncodeKey, and <EncodingType>url</EncodingType> is added.
  bool url_encoding = false;
  std::vector<ObjectEntry> contents;
  std::vector<std::string> common_prefixes;
  // KeyCount is written as contents.size() + common_prefixes.size().
};

std::string ListObjectsV2Document(const ListObjectsV2Result& result);

struct ListObjectsV1Result {
  std::string bucket;
  std::string prefix;     // always written
  std::string marker;     // always written
  std::string delimiter;  // written when non-empty
  // Written only when a delimiter was given and the listing is truncated (otherwise S3 leaves it
  // out and clients continue from the last Key).
  std::string next_marker;
  uint64_t max_keys = 1000;
  bool is_truncated = false;
  // encoding-type=url: Prefix, Marker, NextMarker, Delimiter, Key and CommonPrefixes/Prefix encoded.
  bool url_encoding = false;
  std::vector<ObjectEntry> contents;
  std::vector<std::string> common_prefixes;
};

std::string ListObjectsV1Document(const ListObjectsV1Result& result);

// One <Version> of ListObjectVersions; Coffre keeps a single "null" version per key.
struct VersionEntry {
  bool delete_marker = false;  // a <DeleteMarker>: no ETag, size, checksum or storage class
  std::string key;
  std::string version_id = "null";
  bool is_latest = true;
  TimePoint last_modified;
  std::string etag;  // bare
  uint64_t size = 0;
  std::string storage_class = "STANDARD";
  std::optional<std::string> checksum_algorithm;
  Owner owner;
};

struct ListVersionsResult {
  std::string bucket;
  std::string prefix;                                 // always written
  std::string key_marker;                             // always written
  std::string version_id_marker;                      // always written
  std::optional<std::string> next_key_marker;         // set when truncated
  std::optional<std::string> next_version_id_marker;  // set when truncated
  uint64_t max_keys = 1000;
  std::string delimiter;  // written when non-empty
  bool is_truncated = false;
  // encoding-type=url: Prefix, KeyMarker, NextKeyMarker, Delimiter, Key and CommonPrefixes/Prefix.
  bool url_encoding = false;
  std::vector<VersionEntry> versions;
  std::vector<std::string> common_prefixes;
};

std::string ListVersionsDocument(const ListVersionsResult& result);

// An empty <LocationConstraint/> for us-east-1 (and ""), else the region as its text.
std::string LocationConstraintDocument(std::string_view region);

// The owner alone, with FULL_CONTROL: Coffre has no ACLs beyond the bucket owner.
std::string AccessControlPolicyDocument(const Owner& owner);
// <Tagging><TagSet>...</TagSet></Tagging>, the tags as (key, value) in order.
std::string TaggingDocument(const std::vector<std::pair<std::string, std::string>>& tags);

// Status "" (versioning never configured) writes an empty <VersioningConfiguration/>.
std::string VersioningConfigurationDocument(std::string_view status);
std::string ObjectLockConfigurationDocument(const ObjectLockRule& rule);
std::string RetentionDocument(std::string_view mode, UnixMillis retain_until);
std::string LegalHoldDocument(std::string_view status);
std::string LifecycleConfigurationDocument(const service::LifecycleConfiguration& config);
std::string ServerSideEncryptionConfigurationDocument(const BucketEncryption& encryption);

struct CopyResult {
  TimePoint last_modified;
  std::string etag;                              // bare
  std::map<std::string, std::string> checksums;  // "ChecksumCRC32" -> base64 value
};

std::string CopyObjectResultDocument(const CopyResult& result);
std::string CopyPartResultDocument(const CopyResult& result);

std::string InitiateMultipartUploadDocument(std::string_view bucket, std::string_view key, std::string_view upload_id);

struct CompleteMultipartUploadResult {
  std::string location;  // absolute URL of the object
  std::string bucket;
  std::string key;
  std::string etag;  // bare, e.g. "3858f62230ac3c915f300c664312c11f-9"
  std::map<std::string, std::string> checksums;
  std::optional<std::string> checksum_type;  // "COMPOSITE" / "FULL_OBJECT"
};

std::string CompleteMultipartUploadDocument(const CompleteMultipartUploadResult& result);

// GetObjectAttributes: each member is set when the request asked for it (and the object has it).
struct ObjectAttributesResult {
  std::optional<std::string> etag;  // bare; written bare too, as AWS does here
  std::map<std::string, std::string> checksums;
  std::optional<std::string> checksum_type;  // with checksums: "FULL_OBJECT" / "COMPOSITE"
  struct PartsSection {
    uint32_t parts_count = 0;
    uint32_t part_number_marker = 0;
    uint32_t next_part_number_marker = 0;
    uint32_t max_parts = 1000;
    bool is_truncated = false;
    struct Part {
      uint32_t part_number = 0;
      uint64_t size = 0;
      std::map<std::string, std::string> checksums;
    };
    std::vector<Part> parts;
  };
  std::optional<PartsSection> object_parts;  // multipart objects only
  std::optional<std::string> storage_class;
  std::optional<uint64_t> object_size;
};

std::string ObjectAttributesDocument(const ObjectAttributesResult& result);

struct PartEntry {
  uint32_t part_number = 0;
  TimePoint last_modified;
  std::string etag;  // bare
  uint64_t size = 0;
  std::map<std::string, std::string> checksums;
};

struct ListPartsResult {
  std::string bucket;
  std::string key;
  std::string upload_id;
  Owner initiator;
  Owner owner;
  std::string storage_class = "STANDARD";
  uint32_t part_number_marker = 0;
  uint32_t next_part_number_marker = 0;
  uint32_t max_parts = 1000;
  bool is_truncated = false;
  std::optional<std::string> checksum_algorithm;
  std::optional<std::string> checksum_type;  // "FULL_OBJECT" / "COMPOSITE"
  std::vector<PartEntry> parts;
};

std::string ListPartsDocument(const ListPartsResult& result);

struct UploadEntry {
  std::string key;
  std::string upload_id;
  Owner initiator;
  Owner owner;
  std::string storage_class = "STANDARD";
  TimePoint initiated;
  std::optional<std::string> checksum_algorithm;
  std::optional<std::string> checksum_type;  // "FULL_OBJECT" / "COMPOSITE"
};

struct ListMultipartUploadsResult {
  std::string bucket;
  std::string key_marker;             // always written
  std::string upload_id_marker;       // always written
  std::string next_key_marker;        // always written
  std::string next_upload_id_marker;  // always written
  std::string prefix;                 // written when non-empty
  std::string delimiter;              // written when non-empty
  uint32_t max_uploads = 1000;
  bool is_truncated = false;
  // encoding-type=url: Delimiter, KeyMarker, NextKeyMarker, Prefix, Key and CommonPrefixes/Prefix.
  bool url_encoding = false;
  std::vector<UploadEntry> uploads;
  std::vector<std::string> common_prefixes;
};

std::string ListMultipartUploadsDocument(const ListMultipartUploadsResult& result);

// The outcome for one key of a DeleteObjects request.
struct DeleteOutcome {
  std::string key;
  std::optional<std::string> version_id;  // echoed when the request named one
  std::optional<Error> error;             // set: <Error>; unset: <Deleted>
  // <Deleted> only: a delete marker was added (its id) or the version removed was one (its id).
  std::optional<std::string> delete_marker_version_id;
};

struct DeleteResult {
  bool quiet = false;                   // quiet mode writes only the errors
  std::vector<DeleteOutcome> outcomes;  // in request order
};

std::string DeleteResultDocument(const DeleteResult& result);

}  // namespace coffre::s3
