#include "coffre/s3/xml.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <pugixml.hpp>
#include <set>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"

namespace coffre::s3 {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8 and XML character classes
// ---------------------------------------------------------------------------------------------

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) {
    return 1;
  }
  size_t len = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) {
      lo = 0xA0;
    } else if (b0 == 0xED) {
      hi = 0x9F;
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) {
      lo = 0x90;
    } else if (b0 == 0xF4) {
      hi = 0x8F;
    }
  } else {
    return 0;
  }
  if (i + len > s.size()) {
    return 0;
  }
  if (byte(i + 1) < lo || byte(i + 1) > hi) {
    return 0;
  }
  for (size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) {
      return 0;
    }
  }
  return len;
}

// U+FFFE and U+FFFF are valid UTF-8 but not XML 1.0 characters.
bool IsNonCharacter(std::string_view seq) { return seq == "\xEF\xBF\xBE" || seq == "\xEF\xBF\xBF"; }

bool IsXmlWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view TrimXmlWhitespace(std::string_view s) {
  while (!s.empty() && IsXmlWhitespace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsXmlWhitespace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool StartsWith(std::string_view s, size_t pos, std::string_view prefix) {
  return s.substr(pos, prefix.size()) == prefix;
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

Error Malformed() { return Error(ErrorCode::kMalformedXML); }

// The code point of the character reference body ("#65", "#x41"), if it names a character a key
// may hold. Control characters are accepted (S3 documents &#13; and &#10; for keys, and a client
// must be able to name any key it stored); NUL, surrogates and non-characters are not.
bool IsAcceptableCharRef(std::string_view body) {
  if (body.size() < 2 || body[0] != '#') {
    return false;
  }
  std::string_view digits = body.substr(1);
  uint32_t base = 10;
  if (digits[0] == 'x') {
    base = 16;
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > 8) {
    return false;
  }
  uint32_t cp = 0;
  for (char c : digits) {
    const int d = HexDigitValue(c);
    if (d < 0 || static_cast<uint32_t>(d) >= base) {
      return false;
    }
    cp = cp * base + static_cast<uint32_t>(d);  // cp <= 0x10FFFF before this step, so it cannot overflow
    if (cp > 0x10FFFF) {
      return false;
    }
  }
  return cp != 0 && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE && cp != 0xFFFF;
}

// A pass over the raw body before pugixml sees it. pugixml is not a validating parser: it skips
// DOCTYPEs and leaves unknown entity references as literal text. S3 bodies never need either, so
// anything that could declare or reference an entity is refused outright, as are bytes that are
// not XML 1.0 characters (which also keeps NULs away from pugixml's C strings).
bool PrescanDocument(std::string_view xml) {
  for (size_t i = 0; i < xml.size();) {
    const size_t len = Utf8SequenceLength(xml, i);
    if (len == 0) {
      return false;
    }
    if (len == 1) {
      const auto c = static_cast<uint8_t>(xml[i]);
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
        return false;
      }
    } else if (IsNonCharacter(xml.substr(i, len))) {
      return false;
    }
    i += len;
  }

  for (size_t i = 0; i < xml.size();) {
    if (xml[i] == '<') {
      std::string_view terminator;
      if (StartsWith(xml, i, "<!--")) {
        terminator = "-->";
      } else if (StartsWith(xml, i, "<![CDATA[")) {
        terminator = "]]>";
      } else if (StartsWith(xml, i, "<!")) {
        return false;  // <!DOCTYPE, <!ENTITY, <!ELEMENT, ...
      } else if (StartsWith(xml, i, "<?")) {
        terminator = "?>";
      } else {
        ++i;
        continue;
      }
      const size_t end = xml.find(terminator, i + 2);
      if (end == std::string_view::npos) {
        return false;
      }
      i = end + terminator.size();
      continue;
    }
    if (xml[i] == '&') {
      const size_t semi = xml.find(';', i + 1);
      if (semi == std::string_view::npos || semi - i > 12) {
        return false;
      }
      const std::string_view body = xml.substr(i + 1, semi - i - 1);
      if (body != "amp" && body != "lt" && body != "gt" && body != "quot" && body != "apos" &&
          !IsAcceptableCharRef(body)) {
        return false;
      }
      i = semi + 1;
      continue;
    }
    ++i;
  }
  return true;
}

// Element names are compared without their namespace prefix: S3 accepts "<s3:Delete xmlns:s3=...>"
// as well as the default namespace, and SDKs differ in which they send.
std::string_view LocalName(const char* name) {
  std::string_view n(name);
  const size_t colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

bool IsElement(pugi::xml_node node, std::string_view local_name) {
  return node.type() == pugi::node_element && LocalName(node.name()) == local_name;
}

// Loads `xml` and returns its root element if it is named `root_name`.
Expected<pugi::xml_node, Error> LoadRoot(pugi::xml_document& doc, std::string_view xml, std::string_view root_name) {
  if (!PrescanDocument(xml)) {
    return Malformed();
  }
  // Whitespace-only text is kept when it is an element's whole content: a key may be " ".
  // parse_fragment keeps text outside the root, which pugixml would otherwise drop silently; the
  // loop below refuses it (and a missing or second root) itself.
  constexpr unsigned kFlags = pugi::parse_default | pugi::parse_ws_pcdata_single | pugi::parse_fragment;
  const pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size(), kFlags, pugi::encoding_utf8);
  if (!parsed) {
    return Malformed();
  }
  pugi::xml_node root;
  for (pugi::xml_node child : doc.children()) {
    if (child.type() == pugi::node_element) {
      if (root) {
        return Malformed();  // a second document element
      }
      root = child;
    } else if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      if (!TrimXmlWhitespace(child.value()).empty()) {
        return Malformed();
      }
    }
  }
  if (!root || LocalName(root.name()) != root_name) {
    return Malformed();
  }
  return root;
}

// The character content of an element that may hold only text; nullopt if it has child elements.
std::optional<std::string> TextOf(pugi::xml_node node) {
  std::string text;
  for (pugi::xml_node child : node.children()) {
    switch (child.type()) {
      case pugi::node_pcdata:
      case pugi::node_cdata:
        text += child.value();
        break;
      case pugi::node_element:
        return std::nullopt;
      default:
        break;  // comments, processing instructions
    }
  }
  return text;
}

// The child element named `name`: an empty node when absent, nullopt when repeated.
std::optional<pugi::xml_node> UniqueChild(pugi::xml_node parent, std::string_view name) {
  pugi::xml_node found;
  for (pugi::xml_node child : parent.children()) {
    if (IsElement(child, name)) {
      if (found) {
        return std::nullopt;
      }
      found = child;
    }
  }
  return found;
}

// Text of the unique child `name`: nullopt (as the outer optional) on a schema error, an inner
// nullopt when absent.
std::optional<std::optional<std::string>> UniqueChildText(pugi::xml_node parent, std::string_view name) {
  const std::optional<pugi::xml_node> child = UniqueChild(parent, name);
  if (!child) {
    return std::nullopt;
  }
  if (!*child) {
    return std::optional<std::string>();
  }
  std::optional<std::string> text = TextOf(*child);
  if (!text) {
    return std::nullopt;
  }
  return text;
}

constexpr uint32_t kMinPartNumber = 1;
constexpr uint32_t kMaxPartNumber = 10000;

Expected<uint32_t, Error> ParsePartNumber(std::string_view text) {
  text = TrimXmlWhitespace(text);
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  // S3's schema types PartNumber as a 32-bit int: anything that is not one is a schema error.
  if (text.empty() || text.size() > 10) {
    return Malformed();
  }
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return Malformed();
    }
    value = value * 10 + (c - '0');
  }
  if (negative) {
    value = -value;
  }
  if (value > std::numeric_limits<int32_t>::max() || value < std::numeric_limits<int32_t>::min()) {
    return Malformed();
  }
  if (value < kMinPartNumber || value > kMaxPartNumber) {
    return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  }
  return static_cast<uint32_t>(value);
}

std::string StripETagQuotes(std::string_view etag) {
  etag = TrimXmlWhitespace(etag);
  if (!etag.empty() && etag.front() == '"') {
    etag.remove_prefix(1);
  }
  if (!etag.empty() && etag.back() == '"') {
    etag.remove_suffix(1);
  }
  return std::string(etag);
}

bool EqualsAsciiCaseInsensitive(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

void AppendEscaped(std::string& out, std::string_view text, bool attribute) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = Utf8SequenceLength(text, i);
    if (len == 0) {
      out += kReplacementChar;
      ++i;
      continue;
    }
    if (len > 1) {
      const std::string_view seq = text.substr(i, len);
      out += IsNonCharacter(seq) ? kReplacementChar : seq;
      i += len;
      continue;
    }
    const char c = text[i++];
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':  // a literal CR would be read back as LF
        out += "&#13;";
        break;
      case '\n':  // attribute values normalise LF and TAB to spaces; element content keeps them
        out += attribute ? "&#10;" : "\n";
        break;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          // Not representable in XML 1.0, not even as &#x1;: strict parsers (expat, used by
          // botocore) would reject the whole document.
          out += kReplacementChar;
        } else {
          out += c;
        }
        break;
    }
  }
}

std::string_view MaybeEncode(bool url_encoding, const std::string& raw, std::string& scratch) {
  if (!url_encoding) {
    return raw;
  }
  scratch = UrlEncodeKey(raw);
  return scratch;
}

void WriteOwner(XmlWriter& w, std::string_view element, const Owner& owner) {
  w.StartElement(element);
  w.Element("ID", owner.id);
  if (!owner.display_name.empty()) {
    w.Element("DisplayName", owner.display_name);
  }
  w.EndElement();
}

void WriteChecksums(XmlWriter& w, const std::map<std::string, std::string>& checksums) {
  for (const auto& [name, value] : checksums) {
    w.Element(name, value);
  }
}

void WriteCommonPrefixes(XmlWriter& w, const std::vector<std::string>& prefixes, bool url_encoding) {
  std::string scratch;
  for (const std::string& prefix : prefixes) {
    w.StartElement("CommonPrefixes");
    w.Element("Prefix", MaybeEncode(url_encoding, prefix, scratch));
    w.EndElement();
  }
}

void WriteObjectEntry(XmlWriter& w, const ObjectEntry& entry, bool url_encoding) {
  std::string scratch;
  w.StartElement("Contents");
  w.Element("Key", MaybeEncode(url_encoding, entry.key, scratch));
  w.TimeElement("LastModified", entry.last_modified);
  w.ETagElement(entry.etag);
  if (entry.checksum_algorithm) {
    w.Element("ChecksumAlgorithm", *entry.checksum_algorithm);
  }
  if (entry.checksum_type) {
    w.Element("ChecksumType", *entry.checksum_type);
  }
  w.UintElement("Size", entry.size);
  if (entry.owner) {
    WriteOwner(w, "Owner", *entry.owner);
  }
  w.Element("StorageClass", entry.storage_class);
  w.EndElement();
}

std::string CopyResultDocument(std::string_view root, const CopyResult& result) {
  XmlWriter w;
  w.StartS3Root(root);
  w.TimeElement("LastModified", result.last_modified);
  w.ETagElement(result.etag);
  WriteChecksums(w, result.checksums);
  return w.Finish();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

Expected<std::vector<CompletedPart>, Error> ParseCompleteMultipartUpload(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "CompleteMultipartUpload");
  if (!root.ok()) {
    return root.error();
  }
  std::vector<CompletedPart> parts;
  for (pugi::xml_node part_node : root->children()) {
    if (!IsElement(part_node, "Part")) {
      continue;
    }
    CompletedPart part;
    bool has_number = false;
    bool has_etag = false;
    for (pugi::xml_node field : part_node.children()) {
      if (field.type() != pugi::node_element) {
        continue;
      }
      const std::string_view name = LocalName(field.name());
      const std::optional<std::string> text = TextOf(field);
      if (!text) {
        return Malformed();
      }
      if (name == "PartNumber") {
        if (has_number) {
          return Malformed();
        }
        Expected<uint32_t, Error> number = ParsePartNumber(*text);
        if (!number.ok()) {
          return number.error();
        }
        part.part_number = *number;
        has_number = true;
      } else if (name == "ETag") {
        if (has_etag) {
          return Malformed();
        }
        part.etag = StripETagQuotes(*text);
        has_etag = true;
      } else if (name.starts_with("Checksum")) {
        const bool inserted = part.checksums.emplace(std::string(name), std::string(TrimXmlWhitespace(*text))).second;
        if (!inserted) {
          return Malformed();
        }
      }
    }
    if (!has_number || !has_etag) {
      return Malformed();
    }
    parts.push_back(std::move(part));
  }
  if (parts.empty()) {
    return Malformed();
  }
  return parts;
}

Expected<DeleteRequest, Error> ParseDeleteObjects(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "Delete");
  if (!root.ok()) {
    return root.error();
  }
  DeleteRequest request;
  const std::optional<std::optional<std::string>> quiet = UniqueChildText(*root, "Quiet");
  if (!quiet) {
    return Malformed();
  }
  if (*quiet) {
    const std::string_view value = TrimXmlWhitespace(**quiet);
    if (EqualsAsciiCaseInsensitive(value, "true") || value == "1") {
      request.quiet = true;
    } else if (EqualsAsciiCaseInsensitive(value, "false") || value == "0") {
      request.quiet = false;
    } else {
      return Malformed();
    }
  }
  for (pugi::xml_node object : root->children()) {
    if (!IsElement(object, "Object")) {
      continue;
    }
    if (request.objects.size() == kMaxDeleteObjects) {
      return Malformed();
    }
    std::optional<std::optional<std::string>> key = UniqueChildText(object, "Key");
    const std::optional<std::optional<std::string>> version = UniqueChildText(object, "VersionId");
    if (!key || !*key || !version) {
      return Malformed();
    }
    std::optional<std::string> version_id;
    if (*version) {
      version_id = std::string(TrimXmlWhitespace(**version));
    }
    request.objects.emplace_back(std::move(**key), std::move(version_id));
  }
  if (request.objects.empty()) {
    return Malformed();
  }
  return request;
}

Expected<std::string, Error> ParseCreateBucketConfiguration(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "CreateBucketConfiguration");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<std::optional<std::string>> location = UniqueChildText(*root, "LocationConstraint");
  if (!location) {
    return Malformed();
  }
  if (!*location) {
    return std::string();
  }
  return std::string(TrimXmlWhitespace(**location));
}

Expected<std::vector<std::pair<std::string, std::string>>, Error> ParseTagging(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "Tagging");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<pugi::xml_node> tag_set = UniqueChild(*root, "TagSet");
  if (!tag_set || !*tag_set) {
    return Malformed();
  }
  std::vector<std::pair<std::string, std::string>> tags;
  for (pugi::xml_node tag : tag_set->children()) {
    if (tag.type() == pugi::node_element && !IsElement(tag, "Tag")) {
      return Malformed();
    }
    if (!IsElement(tag, "Tag")) {
      continue;
    }
    std::optional<std::optional<std::string>> key = UniqueChildText(tag, "Key");
    std::optional<std::optional<std::string>> value = UniqueChildText(tag, "Value");
    if (!key || !*key || !value || !*value) {
      return Malformed();
    }
    tags.emplace_back(std::move(**key), std::move(**value));
  }
  return tags;
}

Expected<BucketEncryption, Error> ParseServerSideEncryptionConfiguration(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "ServerSideEncryptionConfiguration");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<pugi::xml_node> rule = UniqueChild(*root, "Rule");
  if (!rule || !*rule) {
    return Malformed();
  }
  const std::optional<pugi::xml_node> by_default = UniqueChild(*rule, "ApplyServerSideEncryptionByDefault");
  if (!by_default || !*by_default) {
    return Malformed();
  }
  BucketEncryption encryption;
  const std::optional<std::optional<std::string>> algorithm = UniqueChildText(*by_default, "SSEAlgorithm");
  if (!algorithm || !*algorithm) {
    return Malformed();
  }
  encryption.algorithm = std::string(TrimXmlWhitespace(**algorithm));
  if (encryption.algorithm != "AES256" && encryption.algorithm != "aws:kms" && encryption.algorithm != "aws:kms:dsse") {
    return Malformed();
  }
  const std::optional<std::optional<std::string>> key_id = UniqueChildText(*by_default, "KMSMasterKeyID");
  if (!key_id) {
    return Malformed();
  }
  if (*key_id) {
    encryption.kms_key_id = std::string(TrimXmlWhitespace(**key_id));
  }
  const std::optional<std::optional<std::string>> bucket_key = UniqueChildText(*rule, "BucketKeyEnabled");
  if (!bucket_key) {
    return Malformed();
  }
  if (*bucket_key) {
    const std::string_view value = TrimXmlWhitespace(**bucket_key);
    if (value != "true" && value != "false") {
      return Malformed();
    }
    encryption.bucket_key_enabled = value == "true";
  }
  return encryption;
}

Expected<BucketVersioning, Error> ParseVersioningConfiguration(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "VersioningConfiguration");
  if (!root.ok()) {
    return root.error();
  }
  BucketVersioning versioning;
  const std::optional<std::optional<std::string>> status = UniqueChildText(*root, "Status");
  if (!status || !*status) {
    return Malformed();
  }
  versioning.status = std::string(TrimXmlWhitespace(**status));
  if (versioning.status != "Enabled" && versioning.status != "Suspended") {
    return Malformed();
  }
  const std::optional<std::optional<std::string>> mfa_delete = UniqueChildText(*root, "MfaDelete");
  if (!mfa_delete) {
    return Malformed();
  }
  if (*mfa_delete) {
    const std::string_view value = TrimXmlWhitespace(**mfa_delete);
    if (value != "Enabled" && value != "Disabled") {
      return Malformed();
    }
    versioning.mfa_delete = value == "Enabled";
  }
  return versioning;
}

namespace {

constexpr uint32_t kMaxRetentionDays = 36500;
constexpr uint32_t kMaxRetentionYears = 100;

bool IsRetentionMode(std::string_view mode) { return mode == "GOVERNANCE" || mode == "COMPLIANCE"; }

}  // namespace

Expected<ObjectLockRule, Error> ParseObjectLockConfiguration(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "ObjectLockConfiguration");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<std::optional<std::string>> enabled = UniqueChildText(*root, "ObjectLockEnabled");
  if (!enabled || !*enabled || TrimXmlWhitespace(**enabled) != "Enabled") {
    return Malformed();
  }
  ObjectLockRule rule;
  const std::optional<pugi::xml_node> rule_node = UniqueChild(*root, "Rule");
  if (!rule_node) {
    return Malformed();
  }
  if (!*rule_node) {
    return rule;
  }
  const std::optional<pugi::xml_node> retention = UniqueChild(*rule_node, "DefaultRetention");
  if (!retention || !*retention) {
    return Malformed();
  }
  const std::optional<std::optional<std::string>> mode = UniqueChildText(*retention, "Mode");
  const std::optional<std::optional<std::string>> days = UniqueChildText(*retention, "Days");
  const std::optional<std::optional<std::string>> years = UniqueChildText(*retention, "Years");
  if (!mode || !*mode || !days || !years || days->has_value() == years->has_value()) {
    return Malformed();
  }
  rule.mode = std::string(TrimXmlWhitespace(**mode));
  if (!IsRetentionMode(rule.mode)) {
    return Malformed();
  }
  const bool in_days = days->has_value();
  const std::string_view period = TrimXmlWhitespace(in_days ? **days : **years);
  int64_t n = 0;
  const bool negative = period.starts_with('-');
  const std::string_view digits = negative ? period.substr(1) : period;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec == std::errc::invalid_argument || end != digits.data() + digits.size()) {
    return Malformed();
  }
  if (negative || n == 0) {
    return Error(ErrorCode::kInvalidArgument, "Default retention period must be a positive integer value");
  }
  if (ec == std::errc::result_out_of_range || n > (in_days ? kMaxRetentionDays : kMaxRetentionYears)) {
    return Error(ErrorCode::kInvalidArgument, "Default retention period is too large");
  }
  (in_days ? rule.days : rule.years) = static_cast<uint32_t>(n);
  return rule;
}

Expected<RetentionSetting, Error> ParseRetention(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "Retention");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<std::optional<std::string>> mode = UniqueChildText(*root, "Mode");
  const std::optional<std::optional<std::string>> date = UniqueChildText(*root, "RetainUntilDate");
  if (!mode || !date || mode->has_value() != date->has_value()) {
    return Malformed();
  }
  RetentionSetting setting;
  if (!mode->has_value()) {
    return setting;
  }
  setting.mode = std::string(TrimXmlWhitespace(**mode));
  const std::optional<UnixMillis> until = ParseIso8601(TrimXmlWhitespace(**date));
  if (!IsRetentionMode(setting.mode) || !until) {
    return Malformed();
  }
  setting.retain_until = *until;
  return setting;
}

Expected<std::string, Error> ParseLegalHold(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "LegalHold");
  if (!root.ok()) {
    return root.error();
  }
  const std::optional<std::optional<std::string>> status = UniqueChildText(*root, "Status");
  if (!status || !*status) {
    return Malformed();
  }
  std::string value(TrimXmlWhitespace(**status));
  if (value != "ON" && value != "OFF") {
    return Malformed();
  }
  return value;
}

namespace {

constexpr size_t kMaxLifecycleRules = 1000;
constexpr size_t kMaxRuleIdLength = 255;
constexpr uint32_t kMaxNewerNoncurrentVersions = 100;

// A count of days (or versions): a decimal integer above zero, else kMalformedXML (not a number)
// or kInvalidArgument naming `what`.
Expected<uint32_t, Error> PositiveCount(std::string_view text, std::string_view what) {
  text = TrimXmlWhitespace(text);
  const bool negative = text.starts_with('-');
  if (negative) text.remove_prefix(1);
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    return Malformed();
  }
  if (negative || n == 0 || ec == std::errc::result_out_of_range || n > std::numeric_limits<int32_t>::max()) {
    return Error(ErrorCode::kInvalidArgument, "'" + std::string(what) + "' must be a positive integer");
  }
  return static_cast<uint32_t>(n);
}

// An optional element holding a PositiveCount: nullopt when absent.
Expected<std::optional<uint32_t>, Error> OptionalCount(pugi::xml_node parent, std::string_view name) {
  const std::optional<std::optional<std::string>> text = UniqueChildText(parent, name);
  if (!text) return Malformed();
  if (!*text) return std::optional<uint32_t>();
  auto n = PositiveCount(**text, name);
  if (!n.ok()) return n.error();
  return std::optional<uint32_t>(*n);
}

Expected<std::optional<uint64_t>, Error> OptionalSize(pugi::xml_node parent, std::string_view name) {
  const std::optional<std::optional<std::string>> text = UniqueChildText(parent, name);
  if (!text) return Malformed();
  if (!*text) return std::optional<uint64_t>();
  const std::string_view digits = TrimXmlWhitespace(**text);
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return Malformed();
  return std::optional<uint64_t>(n);
}

// A <Tag><Key/><Value/></Tag> element into `tags`; kMalformedXML when incomplete, kInvalidArgument
// when its key repeats.
std::optional<Error> AddTag(pugi::xml_node tag, catalog::Tags& tags) {
  const std::optional<std::optional<std::string>> key = UniqueChildText(tag, "Key");
  const std::optional<std::optional<std::string>> value = UniqueChildText(tag, "Value");
  if (!key || !*key || !value || !*value) return Malformed();
  if (!tags.emplace(**key, **value).second) {
    return Error(ErrorCode::kInvalidArgument, "Duplicate Tag Keys are not allowed.");
  }
  return std::nullopt;
}

// The Filter element of a rule.
std::optional<Error> ParseLifecycleFilter(pugi::xml_node filter, service::LifecycleFilter& out) {
  int kinds = 0;
  for (pugi::xml_node child : filter.children()) {
    if (child.type() == pugi::node_element) ++kinds;
  }
  if (kinds > 1) return Malformed();
  const std::optional<std::optional<std::string>> prefix = UniqueChildText(filter, "Prefix");
  if (!prefix) return Malformed();
  if (*prefix) out.prefix = **prefix;
  if (const std::optional<pugi::xml_node> tag = UniqueChild(filter, "Tag"); !tag) {
    return Malformed();
  } else if (*tag) {
    if (auto e = AddTag(*tag, out.tags)) return e;
  }
  auto greater = OptionalSize(filter, "ObjectSizeGreaterThan");
  if (!greater.ok()) return greater.error();
  auto less = OptionalSize(filter, "ObjectSizeLessThan");
  if (!less.ok()) return less.error();
  out.size_greater_than = *greater;
  out.size_less_than = *less;
  const std::optional<pugi::xml_node> conjunction = UniqueChild(filter, "And");
  if (!conjunction) return Malformed();
  if (*conjunction) {
    const std::optional<std::optional<std::string>> and_prefix = UniqueChildText(*conjunction, "Prefix");
    if (!and_prefix) return Malformed();
    if (*and_prefix) out.prefix = **and_prefix;
    for (pugi::xml_node child : conjunction->children()) {
      if (IsElement(child, "Tag")) {
        if (auto e = AddTag(child, out.tags)) return e;
      } else if (child.type() == pugi::node_element && !IsElement(child, "Prefix") &&
                 !IsElement(child, "ObjectSizeGreaterThan") && !IsElement(child, "ObjectSizeLessThan")) {
        return Malformed();
      }
    }
    auto and_greater = OptionalSize(*conjunction, "ObjectSizeGreaterThan");
    if (!and_greater.ok()) return and_greater.error();
    auto and_less = OptionalSize(*conjunction, "ObjectSizeLessThan");
    if (!and_less.ok()) return and_less.error();
    out.size_greater_than = *and_greater;
    out.size_less_than = *and_less;
  }
  return std::nullopt;
}

Expected<service::LifecycleRule, Error> ParseLifecycleRule(pugi::xml_node node) {
  service::LifecycleRule rule;
  const std::optional<std::optional<std::string>> id = UniqueChildText(node, "ID");
  const std::optional<std::optional<std::string>> status = UniqueChildText(node, "Status");
  if (!id || !status || !*status) return Malformed();
  rule.id = *id ? **id : RandomId(16);
  if (rule.id.size() > kMaxRuleIdLength) {
    return Error(ErrorCode::kInvalidArgument, "ID length should not exceed allowed limit of 255");
  }
  const std::string_view status_text = TrimXmlWhitespace(**status);
  if (status_text != "Enabled" && status_text != "Disabled") return Malformed();
  rule.enabled = status_text == "Enabled";

  const std::optional<pugi::xml_node> filter = UniqueChild(node, "Filter");
  const std::optional<std::optional<std::string>> legacy_prefix = UniqueChildText(node, "Prefix");
  if (!filter || !legacy_prefix || (*filter && *legacy_prefix)) return Malformed();
  if (*filter) {
    if (auto e = ParseLifecycleFilter(*filter, rule.filter)) return *e;
  } else if (*legacy_prefix) {
    rule.filter.prefix = **legacy_prefix;
    rule.filter_form = "prefix";
  }

  for (std::string_view transition : {"Transition", "NoncurrentVersionTransition"}) {
    if (const std::optional<pugi::xml_node> t = UniqueChild(node, transition); !t || *t) {
      return Error(ErrorCode::kInvalidStorageClass,
                   "The storage class you specified is not valid: this store has one storage class, STANDARD");
    }
  }
  const std::optional<pugi::xml_node> expiration = UniqueChild(node, "Expiration");
  if (!expiration) return Malformed();
  if (*expiration) {
    auto days = OptionalCount(*expiration, "Days");
    if (!days.ok()) return days.error();
    rule.expiration_days = *days;
    const std::optional<std::optional<std::string>> date = UniqueChildText(*expiration, "Date");
    const std::optional<std::optional<std::string>> marker = UniqueChildText(*expiration, "ExpiredObjectDeleteMarker");
    if (!date || !marker) return Malformed();
    if (int(days->has_value()) + int(date->has_value()) + int(marker->has_value()) != 1) return Malformed();
    if (*date) {
      const std::optional<UnixMillis> when = ParseIso8601(TrimXmlWhitespace(**date));
      if (!when) return Malformed();
      if (*when % (24LL * 60 * 60 * 1000) != 0) {
        return Error(ErrorCode::kInvalidArgument, "'Date' must be at midnight GMT");
      }
      rule.expiration_date = *when;
    }
    if (*marker) {
      const std::string_view value = TrimXmlWhitespace(**marker);
      if (value != "true" && value != "false") return Malformed();
      rule.expired_object_delete_marker = value == "true";
    }
  }
  const std::optional<pugi::xml_node> noncurrent = UniqueChild(node, "NoncurrentVersionExpiration");
  if (!noncurrent) return Malformed();
  if (*noncurrent) {
    auto days = OptionalCount(*noncurrent, "NoncurrentDays");
    if (!days.ok()) return days.error();
    if (!*days) return Malformed();
    rule.noncurrent_days = *days;
    auto newer = OptionalCount(*noncurrent, "NewerNoncurrentVersions");
    if (!newer.ok()) return newer.error();
    if (*newer && **newer > kMaxNewerNoncurrentVersions) {
      return Error(ErrorCode::kInvalidArgument, "'NewerNoncurrentVersions' must be from 1 to 100");
    }
    rule.newer_noncurrent_versions = *newer;
  }
  const std::optional<pugi::xml_node> abort = UniqueChild(node, "AbortIncompleteMultipartUpload");
  if (!abort) return Malformed();
  if (*abort) {
    auto days = OptionalCount(*abort, "DaysAfterInitiation");
    if (!days.ok()) return days.error();
    if (!*days) return Malformed();
    rule.abort_incomplete_days = *days;
  }
  const bool acts = rule.expiration_days || rule.expiration_date || rule.expired_object_delete_marker.has_value() ||
                    rule.noncurrent_days || rule.abort_incomplete_days;
  if (!acts) return Error(ErrorCode::kInvalidRequest, "At least one action needs to be specified in a rule");
  if (!rule.filter.tags.empty() && rule.abort_incomplete_days) {
    return Error(ErrorCode::kInvalidRequest,
                 "Tag-based filter cannot be used with AbortIncompleteMultipartUpload action");
  }
  if (!rule.filter.tags.empty() && rule.expired_object_delete_marker.value_or(false)) {
    return Error(ErrorCode::kInvalidRequest, "Tag-based filter cannot be used with ExpiredObjectDeleteMarker action");
  }
  return rule;
}

}  // namespace

Expected<service::LifecycleConfiguration, Error> ParseLifecycleConfiguration(std::string_view xml) {
  pugi::xml_document doc;
  Expected<pugi::xml_node, Error> root = LoadRoot(doc, xml, "LifecycleConfiguration");
  if (!root.ok()) {
    return root.error();
  }
  service::LifecycleConfiguration config;
  std::set<std::string> ids;
  for (pugi::xml_node child : root->children()) {
    if (child.type() != pugi::node_element) continue;
    if (!IsElement(child, "Rule")) return Malformed();
    if (config.rules.size() == kMaxLifecycleRules) return Malformed();
    auto rule = ParseLifecycleRule(child);
    if (!rule.ok()) return rule.error();
    if (!ids.insert(rule->id).second) return Error(ErrorCode::kInvalidArgument, "Rule ID must be unique");
    config.rules.push_back(std::move(rule).value());
  }
  if (config.rules.empty()) return Malformed();
  return config;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

std::string UrlEncodeKey(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    const auto b = static_cast<uint8_t>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
        c == '*' || c == '_' || c == '/') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0x0F];
    }
  }
  return out;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(out, text, /*attribute=*/false);
  return out;
}

// ---------------------------------------------------------------------------------------------
// XmlWriter
// ---------------------------------------------------------------------------------------------

XmlWriter::XmlWriter() : out_("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n") {}

void XmlWriter::OpenTag(std::string_view name, std::initializer_list<XmlAttribute> attributes) {
  out_ += '<';
  out_ += name;
  for (const auto& [attr, value] : attributes) {
    out_ += ' ';
    out_ += attr;
    out_ += "=\"";
    AppendEscaped(out_, value, /*attribute=*/true);
    out_ += '"';
  }
}

void XmlWriter::StartElement(std::string_view name, std::initializer_list<XmlAttribute> attributes) {
  OpenTag(name, attributes);
  out_ += '>';
  open_.emplace_back(name);
}

void XmlWriter::StartS3Root(std::string_view name) { StartElement(name, {{"xmlns", kS3XmlNamespace}}); }

void XmlWriter::EndElement() {
  if (open_.empty()) {
    return;
  }
  out_ += "</";
  out_ += open_.back();
  out_ += '>';
  open_.pop_back();
}

void XmlWriter::Element(std::string_view name, std::string_view text) {
  out_ += '<';
  out_ += name;
  out_ += '>';
  AppendEscaped(out_, text, /*attribute=*/false);
  out_ += "</";
  out_ += name;
  out_ += '>';
}

void XmlWriter::Text(std::string_view text) { AppendEscaped(out_, text, /*attribute=*/false); }

void XmlWriter::UintElement(std::string_view name, uint64_t value) { Element(name, std::to_string(value)); }

void XmlWriter::BoolElement(std::string_view name, bool value) { Element(name, value ? "true" : "false"); }

void XmlWriter::TimeElement(std::string_view name, TimePoint t) { Element(name, FormatIso8601(t)); }

void XmlWriter::ETagElement(std::string_view etag) {
  std::string quoted;
  quoted.reserve(etag.size() + 2);
  quoted += '"';
  quoted += etag;
  quoted += '"';
  Element("ETag", quoted);
}

void XmlWriter::EmptyElement(std::string_view name, std::initializer_list<XmlAttribute> attributes) {
  OpenTag(name, attributes);
  out_ += "/>";
}

std::string XmlWriter::Finish() {
  while (!open_.empty()) {
    EndElement();
  }
  return std::move(out_);
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

namespace {

// "47 45 54": each byte as two hex digits, as AWS writes StringToSignBytes.
std::string SpacedHex(std::string_view text) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (!out.empty()) {
      out.push_back(' ');
    }
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

}  // namespace

std::string ErrorDocument(const Error& error, std::string_view request_id, std::string_view host_id) {
  XmlWriter w;
  w.StartElement("Error");
  w.Element("Code", error.code_name());
  w.Element("Message", error.effective_message());
  if (!error.resource.empty()) {
    w.Element("Resource", error.resource);
  }
  if (!error.region.empty()) {
    w.Element("Region", error.region);
  }
  if (!error.string_to_sign.empty()) {
    w.Element("AWSAccessKeyId", error.access_key_id);
    w.Element("StringToSign", error.string_to_sign);
    w.Element("SignatureProvided", error.signature_provided);
    w.Element("StringToSignBytes", SpacedHex(error.string_to_sign));
    if (!error.canonical_request.empty()) {
      w.Element("CanonicalRequest", error.canonical_request);
      w.Element("CanonicalRequestBytes", SpacedHex(error.canonical_request));
    }
  }
  w.Element("RequestId", request_id);
  w.Element("HostId", host_id);
  return w.Finish();
}

std::string ListAllMyBucketsDocument(const ListAllMyBucketsResult& result) {
  XmlWriter w;
  w.StartS3Root("ListAllMyBucketsResult");
  WriteOwner(w, "Owner", result.owner);
  w.StartElement("Buckets");
  for (const BucketEntry& bucket : result.buckets) {
    w.StartElement("Bucket");
    w.Element("Name", bucket.name);
    w.TimeElement("CreationDate", bucket.creation_date);
    w.EndElement();
  }
  w.EndElement();
  return w.Finish();
}

namespace {

// What ListObjects v1 and v2 end with alike: Delimiter, EncodingType, IsTruncated, the objects
// and the common prefixes.
template <typename ListResult>
void WriteListingTail(XmlWriter& w, const ListResult& result, bool enc) {
  std::string scratch;
  if (!result.delimiter.empty()) {
    w.Element("Delimiter", MaybeEncode(enc, result.delimiter, scratch));
  }
  if (enc) {
    w.Element("EncodingType", "url");
  }
  w.BoolElement("IsTruncated", result.is_truncated);
  for (const ObjectEntry& entry : result.contents) {
    WriteObjectEntry(w, entry, enc);
  }
  WriteCommonPrefixes(w, result.common_prefixes, enc);
}

}  // namespace

std::string ListObjectsV2Document(const ListObjectsV2Result& result) {
  const bool enc = result.url_encoding;
  std::string scratch;
  XmlWriter w;
  w.StartS3Root("ListBucketResult");
  w.Element("Name", result.bucket);
  w.Element("Prefix", MaybeEncode(enc, result.prefix, scratch));
  if (result.continuation_token) {
    w.Element("ContinuationToken", *result.continuation_token);
  }
  if (result.next_continuation_token) {
    w.Element("NextContinuationToken", *result.next_continuation_token);
  }
  if (result.start_after) {
    w.Element("StartAfter", MaybeEncode(enc, *result.start_after, scratch));
  }
  w.UintElement("KeyCount", result.contents.size() + result.common_prefixes.size());
  w.UintElement("MaxKeys", result.max_keys);
  WriteListingTail(w, result, enc);
  return w.Finish();
}

std::string ListObjectsV1Document(const ListObjectsV1Result& result) {
  const bool enc = result.url_encoding;
  std::string scratch;
  XmlWriter w;
  w.StartS3Root("ListBucketResult");
  w.Element("Name", result.bucket);
  w.Element("Prefix", MaybeEncode(enc, result.prefix, scratch));
  w.Element("Marker", MaybeEncode(enc, result.marker, scratch));
  if (!result.delimiter.empty() && result.is_truncated && !result.next_marker.empty()) {
    w.Element("NextMarker", MaybeEncode(enc, result.next_marker, scratch));
  }
  w.UintElement("MaxKeys", result.max_keys);
  WriteListingTail(w, result, enc);
  return w.Finish();
}

std::string ListVersionsDocument(const ListVersionsResult& result) {
  const bool enc = result.url_encoding;
  std::string scratch;
  XmlWriter w;
  w.StartS3Root("ListVersionsResult");
  w.Element("Name", result.bucket);
  w.Element("Prefix", MaybeEncode(enc, result.prefix, scratch));
  w.Element("KeyMarker", MaybeEncode(enc, result.key_marker, scratch));
  w.Element("VersionIdMarker", result.version_id_marker);
  if (result.next_key_marker) {
    w.Element("NextKeyMarker", MaybeEncode(enc, *result.next_key_marker, scratch));
  }
  if (result.next_version_id_marker) {
    w.Element("NextVersionIdMarker", *result.next_version_id_marker);
  }
  w.UintElement("MaxKeys", result.max_keys);
  if (!result.delimiter.empty()) {
    w.Element("Delimiter", MaybeEncode(enc, result.delimiter, scratch));
  }
  if (enc) {
    w.Element("EncodingType", "url");
  }
  w.BoolElement("IsTruncated", result.is_truncated);
  for (const VersionEntry& v : result.versions) {
    w.StartElement(v.delete_marker ? "DeleteMarker" : "Version");
    w.Element("Key", MaybeEncode(enc, v.key, scratch));
    w.Element("VersionId", v.version_id);
    w.BoolElement("IsLatest", v.is_latest);
    w.TimeElement("LastModified", v.last_modified);
    if (v.delete_marker) {
      WriteOwner(w, "Owner", v.owner);
      w.EndElement();
      continue;
    }
    w.ETagElement(v.etag);
    if (v.checksum_algorithm) {
      w.Element("ChecksumAlgorithm", *v.checksum_algorithm);
    }
    w.UintElement("Size", v.size);
    w.Element("StorageClass", v.storage_class);
    WriteOwner(w, "Owner", v.owner);
    w.EndElement();
  }
  WriteCommonPrefixes(w, result.common_prefixes, enc);
  return w.Finish();
}

std::string LocationConstraintDocument(std::string_view region) {
  XmlWriter w;
  if (region.empty() || region == "us-east-1") {
    w.EmptyElement("LocationConstraint", {{"xmlns", kS3XmlNamespace}});
    return w.Finish();
  }
  w.StartS3Root("LocationConstraint");
  w.Text(region);
  return w.Finish();
}

std::string TaggingDocument(const std::vector<std::pair<std::string, std::string>>& tags) {
  XmlWriter w;
  w.StartS3Root("Tagging");
  w.StartElement("TagSet");
  for (const auto& [key, value] : tags) {
    w.StartElement("Tag");
    w.Element("Key", key);
    w.Element("Value", value);
    w.EndElement();
  }
  w.EndElement();
  return w.Finish();
}

std::string AccessControlPolicyDocument(const Owner& owner) {
  XmlWriter w;
  w.StartS3Root("AccessControlPolicy");
  WriteOwner(w, "Owner", owner);
  w.StartElement("AccessControlList");
  w.StartElement("Grant");
  w.StartElement("Grantee",
                 {{"xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"}, {"xsi:type", "CanonicalUser"}});
  w.Element("ID", owner.id);
  if (!owner.display_name.empty()) {
    w.Element("DisplayName", owner.display_name);
  }
  w.EndElement();
  w.Element("Permission", "FULL_CONTROL");
  return w.Finish();
}

std::string VersioningConfigurationDocument(std::string_view status) {
  XmlWriter w;
  if (status.empty()) {
    w.EmptyElement("VersioningConfiguration", {{"xmlns", kS3XmlNamespace}});
    return w.Finish();
  }
  w.StartS3Root("VersioningConfiguration");
  w.Element("Status", status);
  return w.Finish();
}

std::string ObjectLockConfigurationDocument(const ObjectLockRule& rule) {
  XmlWriter w;
  w.StartS3Root("ObjectLockConfiguration");
  w.Element("ObjectLockEnabled", "Enabled");
  if (!rule.mode.empty()) {
    w.StartElement("Rule");
    w.StartElement("DefaultRetention");
    w.Element("Mode", rule.mode);
    if (rule.days != 0) {
      w.Element("Days", std::to_string(rule.days));
    } else {
      w.Element("Years", std::to_string(rule.years));
    }
    w.EndElement();
    w.EndElement();
  }
  return w.Finish();
}

std::string RetentionDocument(std::string_view mode, UnixMillis retain_until) {
  XmlWriter w;
  w.StartS3Root("Retention");
  w.Element("Mode", mode);
  w.Element("RetainUntilDate", FormatIso8601(FromUnixMillis(retain_until)));
  return w.Finish();
}

std::string LegalHoldDocument(std::string_view status) {
  XmlWriter w;
  w.StartS3Root("LegalHold");
  w.Element("Status", status);
  return w.Finish();
}

std::string LifecycleConfigurationDocument(const service::LifecycleConfiguration& config) {
  XmlWriter w;
  w.StartS3Root("LifecycleConfiguration");
  for (const service::LifecycleRule& r : config.rules) {
    w.StartElement("Rule");
    w.Element("ID", r.id);
    const service::LifecycleFilter& f = r.filter;
    if (r.filter_form == "prefix") {
      w.Element("Prefix", f.prefix);
    } else {
      w.StartElement("Filter");
      const int parts = int(!f.prefix.empty()) + int(f.tags.size()) + int(f.size_greater_than.has_value()) +
                        int(f.size_less_than.has_value());
      auto write_parts = [&] {
        if (!f.prefix.empty() || parts == 0) w.Element("Prefix", f.prefix);
        for (const auto& [k, v] : f.tags) {
          w.StartElement("Tag");
          w.Element("Key", k);
          w.Element("Value", v);
          w.EndElement();
        }
        if (f.size_greater_than) w.Element("ObjectSizeGreaterThan", std::to_string(*f.size_greater_than));
        if (f.size_less_than) w.Element("ObjectSizeLessThan", std::to_string(*f.size_less_than));
      };
      if (parts > 1) {
        w.StartElement("And");
        write_parts();
        w.EndElement();
      } else {
        write_parts();
      }
      w.EndElement();
    }
    w.Element("Status", r.enabled ? "Enabled" : "Disabled");
    if (r.expiration_days || r.expiration_date || r.expired_object_delete_marker) {
      w.StartElement("Expiration");
      if (r.expiration_days) w.Element("Days", std::to_string(*r.expiration_days));
      if (r.expiration_date) w.Element("Date", FormatIso8601(FromUnixMillis(*r.expiration_date)));
      if (r.expired_object_delete_marker) {
        w.Element("ExpiredObjectDeleteMarker", *r.expired_object_delete_marker ? "true" : "false");
      }
      w.EndElement();
    }
    if (r.noncurrent_days) {
      w.StartElement("NoncurrentVersionExpiration");
      w.Element("NoncurrentDays", std::to_string(*r.noncurrent_days));
      if (r.newer_noncurrent_versions) {
        w.Element("NewerNoncurrentVersions", std::to_string(*r.newer_noncurrent_versions));
      }
      w.EndElement();
    }
    if (r.abort_incomplete_days) {
      w.StartElement("AbortIncompleteMultipartUpload");
      w.Element("DaysAfterInitiation", std::to_string(*r.abort_incomplete_days));
      w.EndElement();
    }
    w.EndElement();
  }
  return w.Finish();
}

std::string ServerSideEncryptionConfigurationDocument(const BucketEncryption& encryption) {
  XmlWriter w;
  w.StartS3Root("ServerSideEncryptionConfiguration");
  w.StartElement("Rule");
  w.StartElement("ApplyServerSideEncryptionByDefault");
  w.Element("SSEAlgorithm", encryption.algorithm);
  if (encryption.kms_key_id) {
    w.Element("KMSMasterKeyID", *encryption.kms_key_id);
  }
  w.EndElement();
  w.BoolElement("BucketKeyEnabled", encryption.bucket_key_enabled);
  w.EndElement();
  return w.Finish();
}

std::string CopyObjectResultDocument(const CopyResult& result) {
  return CopyResultDocument("CopyObjectResult", result);
}

std::string CopyPartResultDocument(const CopyResult& result) { return CopyResultDocument("CopyPartResult", result); }

std::string InitiateMultipartUploadDocument(std::string_view bucket, std::string_view key, std::string_view upload_id) {
  XmlWriter w;
  w.StartS3Root("InitiateMultipartUploadResult");
  w.Element("Bucket", bucket);
  w.Element("Key", key);
  w.Element("UploadId", upload_id);
  return w.Finish();
}

std::string CompleteMultipartUploadDocument(const CompleteMultipartUploadResult& result) {
  XmlWriter w;
  w.StartS3Root("CompleteMultipartUploadResult");
  w.Element("Location", result.location);
  w.Element("Bucket", result.bucket);
  w.Element("Key", result.key);
  w.ETagElement(result.etag);
  WriteChecksums(w, result.checksums);
  if (result.checksum_type) {
    w.Element("ChecksumType", *result.checksum_type);
  }
  return w.Finish();
}

std::string ObjectAttributesDocument(const ObjectAttributesResult& result) {
  XmlWriter w;
  w.StartS3Root("GetObjectAttributesResponse");
  if (result.etag) {
    w.Element("ETag", *result.etag);
  }
  if (!result.checksums.empty()) {
    w.StartElement("Checksum");
    WriteChecksums(w, result.checksums);
    if (result.checksum_type) {
      w.Element("ChecksumType", *result.checksum_type);
    }
    w.EndElement();
  }
  if (result.object_parts) {
    const ObjectAttributesResult::PartsSection& parts = *result.object_parts;
    w.StartElement("ObjectParts");
    w.UintElement("PartsCount", parts.parts_count);
    w.UintElement("PartNumberMarker", parts.part_number_marker);
    w.UintElement("NextPartNumberMarker", parts.next_part_number_marker);
    w.UintElement("MaxParts", parts.max_parts);
    w.BoolElement("IsTruncated", parts.is_truncated);
    for (const ObjectAttributesResult::PartsSection::Part& part : parts.parts) {
      w.StartElement("Part");
      WriteChecksums(w, part.checksums);
      w.UintElement("PartNumber", part.part_number);
      w.UintElement("Size", part.size);
      w.EndElement();
    }
    w.EndElement();
  }
  if (result.storage_class) {
    w.Element("StorageClass", *result.storage_class);
  }
  if (result.object_size) {
    w.UintElement("ObjectSize", *result.object_size);
  }
  return w.Finish();
}

std::string ListPartsDocument(const ListPartsResult& result) {
  XmlWriter w;
  w.StartS3Root("ListPartsResult");
  w.Element("Bucket", result.bucket);
  w.Element("Key", result.key);
  w.Element("UploadId", result.upload_id);
  WriteOwner(w, "Initiator", result.initiator);
  WriteOwner(w, "Owner", result.owner);
  w.Element("StorageClass", result.storage_class);
  w.UintElement("PartNumberMarker", result.part_number_marker);
  w.UintElement("NextPartNumberMarker", result.next_part_number_marker);
  w.UintElement("MaxParts", result.max_parts);
  w.BoolElement("IsTruncated", result.is_truncated);
  if (result.checksum_algorithm) {
    w.Element("ChecksumAlgorithm", *result.checksum_algorithm);
  }
  if (result.checksum_type) {
    w.Element("ChecksumType", *result.checksum_type);
  }
  for (const PartEntry& part : result.parts) {
    w.StartElement("Part");
    w.UintElement("PartNumber", part.part_number);
    w.TimeElement("LastModified", part.last_modified);
    w.ETagElement(part.etag);
    w.UintElement("Size", part.size);
    WriteChecksums(w, part.checksums);
    w.EndElement();
  }
  return w.Finish();
}

std::string ListMultipartUploadsDocument(const ListMultipartUploadsResult& result) {
  const bool enc = result.url_encoding;
  std::string scratch;
  XmlWriter w;
  w.StartS3Root("ListMultipartUploadsResult");
  w.Element("Bucket", result.bucket);
  w.Element("KeyMarker", MaybeEncode(enc, result.key_marker, scratch));
  w.Element("UploadIdMarker", result.upload_id_marker);
  w.Element("NextKeyMarker", MaybeEncode(enc, result.next_key_marker, scratch));
  w.Element("NextUploadIdMarker", result.next_upload_id_marker);
  if (!result.delimiter.empty()) {
    w.Element("Delimiter", MaybeEncode(enc, result.delimiter, scratch));
  }
  if (!result.prefix.empty()) {
    w.Element("Prefix", MaybeEncode(enc, result.prefix, scratch));
  }
  if (enc) {
    w.Element("EncodingType", "url");
  }
  w.UintElement("MaxUploads", result.max_uploads);
  w.BoolElement("IsTruncated", result.is_truncated);
  for (const UploadEntry& upload : result.uploads) {
    w.StartElement("Upload");
    w.Element("Key", MaybeEncode(enc, upload.key, scratch));
    w.Element("UploadId", upload.upload_id);
    WriteOwner(w, "Initiator", upload.initiator);
    WriteOwner(w, "Owner", upload.owner);
    w.Element("StorageClass", upload.storage_class);
    w.TimeElement("Initiated", upload.initiated);
    if (upload.checksum_algorithm) {
      w.Element("ChecksumAlgorithm", *upload.checksum_algorithm);
    }
    if (upload.checksum_type) {
      w.Element("ChecksumType", *upload.checksum_type);
    }
    w.EndElement();
  }
  WriteCommonPrefixes(w, result.common_prefixes, enc);
  return w.Finish();
}

std::string DeleteResultDocument(const DeleteResult& result) {
  XmlWriter w;
  w.StartS3Root("DeleteResult");
  for (const DeleteOutcome& outcome : result.outcomes) {
    if (outcome.error) {
      w.StartElement("Error");
      w.Element("Key", outcome.key);
      if (outcome.version_id) {
        w.Element("VersionId", *outcome.version_id);
      }
      w.Element("Code", outcome.error->code_name());
      w.Element("Message", outcome.error->effective_message());
      w.EndElement();
    } else if (!result.quiet) {
      w.StartElement("Deleted");
      w.Element("Key", outcome.key);
      if (outcome.version_id) {
        w.Element("VersionId", *outcome.version_id);
      }
      if (outcome.delete_marker_version_id) {
        w.BoolElement("DeleteMarker", true);
        w.Element("DeleteMarkerVersionId", *outcome.delete_marker_version_id);
      }
      w.EndElement();
    }
  }
  return w.Finish();
}

}  // namespace coffre::s3
