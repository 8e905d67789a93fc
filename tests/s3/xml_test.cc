#include "coffre/s3/xml.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <pugixml.hpp>
#include <string>
#include <vector>

#include "coffre/common/clock.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

using test_support::IsOk;
using ::testing::Not;

constexpr std::string_view kDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
constexpr std::string_view kNs = "http://s3.amazonaws.com/doc/2006-03-01/";

// 2009-10-12T17:50:30.000Z, the date of S3's documentation examples.
TimePoint ExampleTime() { return FromUnixMillis(1255369830000); }

template <typename T>
ErrorCode CodeOf(const Expected<T, Error>& r) {
  EXPECT_THAT(r, Not(IsOk()));
  return r.ok() ? ErrorCode::kInternalError : r.error().code;
}

// Every document must be well-formed XML 1.0, not merely accepted by pugixml (which also takes
// characters XML 1.0 forbids): no raw C0 controls but TAB/LF, and no character references except
// the three that XML 1.0 allows and the writer uses.
void ExpectStrictlyWellFormed(const std::string& doc, pugi::xml_document& parsed) {
  ASSERT_TRUE(doc.starts_with(kDecl)) << doc;
  for (char c : doc) {
    const auto b = static_cast<uint8_t>(c);
    ASSERT_FALSE(b < 0x20 && c != '\n' && c != '\t') << "raw control character " << int{b} << " in " << doc;
  }
  for (size_t pos = doc.find("&#"); pos != std::string::npos; pos = doc.find("&#", pos + 1)) {
    const std::string ref = doc.substr(pos, doc.find(';', pos) - pos + 1);
    EXPECT_TRUE(ref == "&#13;" || ref == "&#10;" || ref == "&#9;") << ref;
  }
  const pugi::xml_parse_result r =
      parsed.load_buffer(doc.data(), doc.size(), pugi::parse_default | pugi::parse_ws_pcdata_single);
  ASSERT_TRUE(r) << r.description() << " at " << r.offset << " in " << doc;
}

pugi::xml_node Root(pugi::xml_document& doc) { return doc.document_element(); }

// ---------------------------------------------------------------------------------------------
// CompleteMultipartUpload
// ---------------------------------------------------------------------------------------------

TEST(XmlCompleteMultipartUpload, ParsesWithNamespace) {
  auto r = ParseCompleteMultipartUpload(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Part><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag><PartNumber>1</PartNumber></Part>"
      "<Part><PartNumber>2</PartNumber><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>"
      "</CompleteMultipartUpload>");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].part_number, 1u);
  EXPECT_EQ((*r)[0].etag, "a54357aff0632cce46d942af68356b38");
  EXPECT_EQ((*r)[1].part_number, 2u);
  EXPECT_EQ((*r)[1].etag, "0c78aef83f66abc1fa1e8477f296d394");
  EXPECT_TRUE((*r)[0].checksums.empty());
}

TEST(XmlCompleteMultipartUpload, ParsesWithoutNamespaceAndWithWhitespace) {
  auto r = ParseCompleteMultipartUpload(
      "\n<CompleteMultipartUpload>\n"
      "  <Part>\n"
      "    <PartNumber>\n      3\n    </PartNumber>\n"
      "    <ETag>  etag-three  </ETag>\n"
      "  </Part>\r\n"
      "  <!-- a comment -->\n"
      "  <Part>\t<PartNumber>1</PartNumber><ETag><![CDATA[\"etag-one\"]]></ETag></Part>\n"
      "</CompleteMultipartUpload>\n");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  // Document order, not sorted: InvalidPartOrder is the handler's to answer.
  EXPECT_EQ((*r)[0].part_number, 3u);
  EXPECT_EQ((*r)[0].etag, "etag-three");
  EXPECT_EQ((*r)[1].part_number, 1u);
  EXPECT_EQ((*r)[1].etag, "etag-one");
}

TEST(XmlCompleteMultipartUpload, ParsesNamespacePrefixAndByteOrderMark) {
  auto r = ParseCompleteMultipartUpload(
      "\xEF\xBB\xBF<s3:CompleteMultipartUpload xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<s3:Part><s3:PartNumber>7</s3:PartNumber><s3:ETag>e</s3:ETag></s3:Part>"
      "</s3:CompleteMultipartUpload>");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].part_number, 7u);
}

TEST(XmlCompleteMultipartUpload, KeepsChecksums) {
  auto r = ParseCompleteMultipartUpload(
      "<CompleteMultipartUpload><Part><ChecksumCRC32>AAAAAA==</ChecksumCRC32><PartNumber>1</PartNumber>"
      "<ETag>x</ETag><ChecksumSHA256> n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg= </ChecksumSHA256>"
      "<Unknown>ignored</Unknown></Part></CompleteMultipartUpload>");
  ASSERT_OK(r);
  const auto& sums = (*r)[0].checksums;
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums.at("ChecksumCRC32"), "AAAAAA==");
  EXPECT_EQ(sums.at("ChecksumSHA256"), "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=");
}

TEST(XmlCompleteMultipartUpload, DuplicatePartNumbersAreLeftToTheHandler) {
  auto r = ParseCompleteMultipartUpload(
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
      "<Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>");
  ASSERT_OK(r);
  EXPECT_EQ(r->size(), 2u);
}

TEST(XmlCompleteMultipartUpload, PartNumberBounds) {
  auto body = [](std::string_view n) {
    return "<CompleteMultipartUpload><Part><PartNumber>" + std::string(n) +
           "</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>";
  };
  EXPECT_EQ((*ParseCompleteMultipartUpload(body("1")))[0].part_number, 1u);
  EXPECT_EQ((*ParseCompleteMultipartUpload(body("10000")))[0].part_number, 10000u);
  EXPECT_EQ((*ParseCompleteMultipartUpload(body("+0042")))[0].part_number, 42u);
  EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(body("0"))), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(body("10001"))), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(body("-1"))), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(body("2147483647"))), ErrorCode::kInvalidArgument);
  // Not a 32-bit integer at all: a schema error.
  for (std::string_view bad : {"", " ", "abc", "1a", "1.0", "0x10", "2147483648", "99999999999", "--1", "1 2"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(body(bad))), ErrorCode::kMalformedXML);
  }
}

TEST(XmlCompleteMultipartUpload, RejectsSchemaViolations) {
  for (std::string_view bad : {
           "<CompleteMultipartUpload></CompleteMultipartUpload>",
           "<CompleteMultipartUpload/>",
           "<CompleteMultipartUpload><Other/></CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>"
           "<ETag>e</ETag></Part></CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag><ETag>f</ETag></Part>"
           "</CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber><X>1</X></PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag>"
           "<ChecksumCRC32>a</ChecksumCRC32><ChecksumCRC32>b</ChecksumCRC32></Part></CompleteMultipartUpload>",
           "<Delete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Delete>",
           "<CompleteMultipartUploadX><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUploadX>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlCompleteMultipartUpload, RejectsMalformedDocuments) {
  const std::string good =
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>";
  ASSERT_OK(ParseCompleteMultipartUpload(good));
  for (size_t cut = 0; cut < good.size(); ++cut) {  // every truncation
    SCOPED_TRACE(cut);
    EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(good.substr(0, cut))), ErrorCode::kMalformedXML);
  }
  for (std::string_view bad : {
           "",
           "   ",
           "not xml",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload><CompleteMultipartUpload/>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload>trailing",
           "leading<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Wrong>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload><!-- unterminated",
           "<CompleteMultipartUpload><Part><PartNumber a=1>1</PartNumber><ETag>e</ETag></Part>"
           "</CompleteMultipartUpload>",
           "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e & f</ETag></Part>"
           "</CompleteMultipartUpload>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(bad)), ErrorCode::kMalformedXML);
  }
}

// ---------------------------------------------------------------------------------------------
// Entity attacks, against every parser
// ---------------------------------------------------------------------------------------------

constexpr std::string_view kBillionLaughs =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE lolz [\n"
    " <!ENTITY lol \"lol\">\n"
    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
    "]>\n";

std::vector<std::string> EntityAttacks(std::string_view root, std::string_view inner_open,
                                       std::string_view inner_close) {
  const std::string r(root);
  const std::string body = std::string(inner_open) + "&lol3;" + std::string(inner_close);
  return {
      std::string(kBillionLaughs) + "<" + r + ">" + body + "</" + r + ">",
      // External entity (XXE).
      "<?xml version=\"1.0\"?><!DOCTYPE " + r + " [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><" + r + ">" +
          std::string(inner_open) + "&xxe;" + std::string(inner_close) + "</" + r + ">",
      // External DTD alone.
      "<!DOCTYPE " + r + " SYSTEM \"http://example.invalid/evil.dtd\"><" + r + ">" + std::string(inner_open) + "x" +
          std::string(inner_close) + "</" + r + ">",
      // A harmless-looking DOCTYPE is refused too.
      "<!DOCTYPE " + r + "><" + r + ">" + std::string(inner_open) + "x" + std::string(inner_close) + "</" + r + ">",
      // Undeclared entity references are not well-formed.
      "<" + r + ">" + body + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&nbsp;" + std::string(inner_close) + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&#0;" + std::string(inner_close) + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&#xD800;" + std::string(inner_close) + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&#x110000;" + std::string(inner_close) + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&#;" + std::string(inner_close) + "</" + r + ">",
      "<" + r + ">" + std::string(inner_open) + "&amp" + std::string(inner_close) + "</" + r + ">",
  };
}

TEST(XmlEntityAttacks, CompleteMultipartUploadRejected) {
  for (const std::string& doc :
       EntityAttacks("CompleteMultipartUpload", "<Part><PartNumber>1</PartNumber><ETag>", "</ETag></Part>")) {
    SCOPED_TRACE(doc);
    EXPECT_EQ(CodeOf(ParseCompleteMultipartUpload(doc)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlEntityAttacks, DeleteObjectsRejected) {
  for (const std::string& doc : EntityAttacks("Delete", "<Object><Key>", "</Key></Object>")) {
    SCOPED_TRACE(doc);
    EXPECT_EQ(CodeOf(ParseDeleteObjects(doc)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlEntityAttacks, CreateBucketConfigurationRejected) {
  for (const std::string& doc :
       EntityAttacks("CreateBucketConfiguration", "<LocationConstraint>", "</LocationConstraint>")) {
    SCOPED_TRACE(doc);
    EXPECT_EQ(CodeOf(ParseCreateBucketConfiguration(doc)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlEntityAttacks, DoctypeInsideCommentIsOnlyAComment) {
  auto r = ParseDeleteObjects("<!-- <!DOCTYPE x> &lol; --><Delete><Object><Key>k</Key></Object></Delete>");
  ASSERT_OK(r);
  EXPECT_EQ(r->objects[0].first, "k");
}

// ---------------------------------------------------------------------------------------------
// DeleteObjects
// ---------------------------------------------------------------------------------------------

TEST(XmlDeleteObjects, ParsesWithNamespaceQuietAndVersions) {
  auto r = ParseDeleteObjects(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
      "  <Quiet>true</Quiet>\n"
      "  <Object><Key>sample1.txt</Key></Object>\n"
      "  <Object>\n    <Key>sample2.txt</Key>\n    <VersionId> null </VersionId>\n  </Object>\n"
      "  <Object><Key>sample3.txt</Key><VersionId></VersionId></Object>\n"
      "</Delete>");
  ASSERT_OK(r);
  EXPECT_TRUE(r->quiet);
  ASSERT_EQ(r->objects.size(), 3u);
  EXPECT_EQ(r->objects[0].first, "sample1.txt");
  EXPECT_FALSE(r->objects[0].second.has_value());
  EXPECT_EQ(r->objects[1].first, "sample2.txt");
  EXPECT_EQ(r->objects[1].second, "null");
  EXPECT_EQ(r->objects[2].second, "");
}

TEST(XmlDeleteObjects, QuietDefaultsToFalseAndAcceptsBooleanForms) {
  auto r = ParseDeleteObjects("<Delete><Object><Key>a</Key></Object></Delete>");
  ASSERT_OK(r);
  EXPECT_FALSE(r->quiet);
  for (std::string_view t : {"true", "True", "1", " true\n"}) {
    auto q = ParseDeleteObjects("<Delete><Quiet>" + std::string(t) + "</Quiet><Object><Key>a</Key></Object></Delete>");
    ASSERT_OK(q) << t;
    EXPECT_TRUE(q->quiet);
  }
  for (std::string_view f : {"false", "FALSE", "0"}) {
    auto q = ParseDeleteObjects("<Delete><Quiet>" + std::string(f) + "</Quiet><Object><Key>a</Key></Object></Delete>");
    ASSERT_OK(q) << f;
    EXPECT_FALSE(q->quiet);
  }
  for (std::string_view bad : {"yes", "", "2", "truee"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseDeleteObjects("<Delete><Quiet>" + std::string(bad) +
                                        "</Quiet><Object><Key>a</Key></Object></Delete>")),
              ErrorCode::kMalformedXML);
  }
}

TEST(XmlDeleteObjects, KeysAreDecodedAndKeptExactly) {
  auto r = ParseDeleteObjects(
      "<Delete>"
      "<Object><Key>a&amp;b&lt;c&gt;d&quot;e&apos;f</Key></Object>"
      "<Object><Key>raw \"quotes\" and 'apostrophes' &gt; ></Key></Object>"
      "<Object><Key>  spaces around  </Key></Object>"
      "<Object><Key> </Key></Object>"
      "<Object><Key>line&#13;&#10;break&#x9;tab</Key></Object>"
      "<Object><Key>ctl&#1;&#x1F;</Key></Object>"
      "<Object><Key>caf\xC3\xA9 &#x1F600; &#233;</Key></Object>"
      "<Object><Key><![CDATA[<not & parsed>]]></Key></Object>"
      "<Object><Key>raw\r\nnewline</Key></Object>"
      "<Object><Key>a/b/../c?x=1#frag%20</Key></Object>"
      "</Delete>");
  ASSERT_OK(r);
  std::vector<std::string> keys;
  for (const auto& [key, version] : r->objects) {
    keys.push_back(key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "a&b<c>d\"e'f",
                      "raw \"quotes\" and 'apostrophes' > >",
                      "  spaces around  ",
                      " ",
                      "line\r\nbreak\ttab",
                      "ctl\x01\x1F",
                      "caf\xC3\xA9 \xF0\x9F\x98\x80 \xC3\xA9",
                      "<not & parsed>",
                      "raw\nnewline",  // XML end-of-line normalisation; clients send &#13; to keep a CR
                      "a/b/../c?x=1#frag%20",
                  }));
}

TEST(XmlDeleteObjects, EmptyKeyIsLeftToTheHandler) {
  auto r = ParseDeleteObjects("<Delete><Object><Key></Key></Object><Object><Key/></Object></Delete>");
  ASSERT_OK(r);
  ASSERT_EQ(r->objects.size(), 2u);
  EXPECT_EQ(r->objects[0].first, "");
  EXPECT_EQ(r->objects[1].first, "");
}

TEST(XmlDeleteObjects, ObjectCountLimits) {
  auto body = [](size_t n) {
    std::string xml = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    for (size_t i = 0; i < n; ++i) {
      xml += "<Object><Key>key-" + std::to_string(i) + "</Key></Object>";
    }
    return xml + "</Delete>";
  };
  auto thousand = ParseDeleteObjects(body(1000));
  ASSERT_OK(thousand);
  EXPECT_EQ(thousand->objects.size(), 1000u);
  EXPECT_EQ(thousand->objects[999].first, "key-999");
  EXPECT_EQ(CodeOf(ParseDeleteObjects(body(1001))), ErrorCode::kMalformedXML);
  EXPECT_EQ(CodeOf(ParseDeleteObjects(body(0))), ErrorCode::kMalformedXML);
  EXPECT_EQ(CodeOf(ParseDeleteObjects("<Delete><Quiet>true</Quiet></Delete>")), ErrorCode::kMalformedXML);
}

TEST(XmlDeleteObjects, RejectsSchemaViolations) {
  for (std::string_view bad : {
           "<Delete><Object></Object></Delete>",
           "<Delete><Object><VersionId>v</VersionId></Object></Delete>",
           "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
           "<Delete><Object><Key>a</Key><VersionId>1</VersionId><VersionId>2</VersionId></Object></Delete>",
           "<Delete><Object><Key><b>a</b></Key></Object></Delete>",
           "<Delete><Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>",
           "<DeleteObjects><Object><Key>a</Key></Object></DeleteObjects>",
           "<CompleteMultipartUpload><Object><Key>a</Key></Object></CompleteMultipartUpload>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseDeleteObjects(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlDeleteObjects, RejectsBytesThatAreNotXmlCharacters) {
  using namespace std::string_literals;
  for (const std::string& bad : {
           "<Delete><Object><Key>a\x01</Key></Object></Delete>"s,
           "<Delete><Object><Key>a\0b</Key></Object></Delete>"s,
           "<Delete><Object><Key>\xC3\x28</Key></Object></Delete>"s,          // invalid UTF-8
           "<Delete><Object><Key>\xC0\xAF</Key></Object></Delete>"s,          // overlong '/'
           "<Delete><Object><Key>\xED\xA0\x80</Key></Object></Delete>"s,      // surrogate
           "<Delete><Object><Key>\xEF\xBF\xBE</Key></Object></Delete>"s,      // U+FFFE
           "<Delete><Object><Key>\xF4\x90\x80\x80</Key></Object></Delete>"s,  // above U+10FFFF
           "<Delete><Object><Key>trunc\xE2\x82</Key></Object></Delete>"s,
       }) {
    EXPECT_EQ(CodeOf(ParseDeleteObjects(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlDeleteObjects, IgnoresUnknownElements) {
  auto r = ParseDeleteObjects("<Delete><Object><Key>a</Key><ETag>x</ETag><Size>3</Size></Object><Extra/></Delete>");
  ASSERT_OK(r);
  EXPECT_EQ(r->objects.size(), 1u);
}

TEST(XmlDeleteObjects, RoundTripsKeysEscapedByTheWriter) {
  const std::vector<std::string> keys = {"a&b", "<tag>", "\"q\" 'a'", "x\r\ny\tz", " ", "caf\xC3\xA9/\xE2\x82\xAC",
                                         "]]>", "&amp;"};
  std::string xml = "<Delete>";
  for (const std::string& k : keys) {
    xml += "<Object><Key>" + XmlEscape(k) + "</Key></Object>";
  }
  xml += "</Delete>";
  auto r = ParseDeleteObjects(xml);
  ASSERT_OK(r) << xml;
  ASSERT_EQ(r->objects.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(r->objects[i].first, keys[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// CreateBucketConfiguration and VersioningConfiguration
// ---------------------------------------------------------------------------------------------

TEST(XmlCreateBucketConfiguration, Parses) {
  auto with_ns = ParseCreateBucketConfiguration(
      "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<LocationConstraint>eu-west-3</LocationConstraint></CreateBucketConfiguration>");
  ASSERT_OK(with_ns);
  EXPECT_EQ(*with_ns, "eu-west-3");
  auto spaced = ParseCreateBucketConfiguration(
      "<CreateBucketConfiguration>\n  <LocationConstraint>\n    fr-par\n  </LocationConstraint>\n"
      "</CreateBucketConfiguration>\n");
  ASSERT_OK(spaced);
  EXPECT_EQ(*spaced, "fr-par");
  auto absent = ParseCreateBucketConfiguration("<CreateBucketConfiguration/>");
  ASSERT_OK(absent);
  EXPECT_EQ(*absent, "");
  auto empty = ParseCreateBucketConfiguration(
      "<CreateBucketConfiguration><LocationConstraint/>"
      "</CreateBucketConfiguration>");
  ASSERT_OK(empty);
  EXPECT_EQ(*empty, "");
}

TEST(XmlCreateBucketConfiguration, RejectsMalformed) {
  for (std::string_view bad : {
           "",
           "<CreateBucketConfiguration>",
           "<Configuration><LocationConstraint>eu</LocationConstraint></Configuration>",
           "<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint>"
           "<LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
           "<CreateBucketConfiguration><LocationConstraint><x/></LocationConstraint></CreateBucketConfiguration>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseCreateBucketConfiguration(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlServerSideEncryptionConfiguration, Parses) {
  auto full = ParseServerSideEncryptionConfiguration(
      "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>"
      "<ApplyServerSideEncryptionByDefault><SSEAlgorithm> aws:kms </SSEAlgorithm>"
      "<KMSMasterKeyID>dossiers</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
      "<BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>");
  ASSERT_OK(full);
  EXPECT_EQ(full->algorithm, "aws:kms");
  EXPECT_EQ(full->kms_key_id, "dossiers");
  EXPECT_TRUE(full->bucket_key_enabled);
  auto plain = ParseServerSideEncryptionConfiguration(
      "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
      "<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
      "</ServerSideEncryptionConfiguration>");
  ASSERT_OK(plain);
  EXPECT_EQ(plain->algorithm, "AES256");
  EXPECT_FALSE(plain->kms_key_id.has_value());
  EXPECT_FALSE(plain->bucket_key_enabled);
}

TEST(XmlServerSideEncryptionConfiguration, RejectsMalformed) {
  for (std::string_view bad : {
           "",
           "<ServerSideEncryptionConfiguration/>",
           "<EncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
           "</ApplyServerSideEncryptionByDefault></Rule></EncryptionConfiguration>",
           "<ServerSideEncryptionConfiguration><Rule/></ServerSideEncryptionConfiguration>",
           "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault/></Rule>"
           "</ServerSideEncryptionConfiguration>",
           "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aes256"
           "</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
           "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
           "</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>1</BucketKeyEnabled></Rule>"
           "</ServerSideEncryptionConfiguration>",
           "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
           "</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule><Rule><ApplyServerSideEncryptionByDefault>"
           "<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
           "</ServerSideEncryptionConfiguration>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseServerSideEncryptionConfiguration(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlServerSideEncryptionConfiguration, Document) {
  EXPECT_EQ(ServerSideEncryptionConfigurationDocument({}),
            std::string(kDecl) +
                "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>"
                "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
                "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule>"
                "</ServerSideEncryptionConfiguration>");
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

TEST(XmlUrlEncodeKey, EncodesAsS3) {
  EXPECT_EQ(UrlEncodeKey(""), "");
  EXPECT_EQ(UrlEncodeKey("photos/2006/January/sample.jpg"), "photos/2006/January/sample.jpg");
  EXPECT_EQ(UrlEncodeKey("a b.txt"), "a+b.txt");
  EXPECT_EQ(UrlEncodeKey("a+b.txt"), "a%2Bb.txt");
  EXPECT_EQ(UrlEncodeKey("100%.csv"), "100%25.csv");
  EXPECT_EQ(UrlEncodeKey("quux ab/"), "quux+ab/");
  EXPECT_EQ(UrlEncodeKey("\xED\x95\x9C\xEA\xB8\x80/x.txt"), "%ED%95%9C%EA%B8%80/x.txt");
  EXPECT_EQ(UrlEncodeKey("-_.*~"), "-_.*%7E");
  EXPECT_EQ(UrlEncodeKey("&<>\"'"), "%26%3C%3E%22%27");
  EXPECT_EQ(UrlEncodeKey(std::string_view("\x00\x01\n\r\x7F", 5)), "%00%01%0A%0D%7F");
  EXPECT_EQ(UrlEncodeKey("?=#:;@,$!()[]{}"), "%3F%3D%23%3A%3B%40%2C%24%21%28%29%5B%5D%7B%7D");
}

TEST(XmlEscape, EscapesMarkupAndReplacesWhatXmlCannotCarry) {
  EXPECT_EQ(XmlEscape("plain/key.txt"), "plain/key.txt");
  EXPECT_EQ(XmlEscape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(XmlEscape("a\tb\nc\rd"), "a\tb\nc&#13;d");
  EXPECT_EQ(XmlEscape(std::string_view("x\x00y\x01z\x1F", 6)), "x\xEF\xBF\xBDy\xEF\xBF\xBDz\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(XmlEscape("bad\xC3(\xFF"), "bad\xEF\xBF\xBD(\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xEF\xBF\xBF"), "\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\x7F\xC2\x80"), "\x7F\xC2\x80");  // DEL and C1 controls are XML 1.0 characters
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

TEST(XmlWriter, BuildsNestedDocument) {
  XmlWriter w;
  w.StartS3Root("Root");
  w.StartElement("A", {{"attr", "v\"<&>\n"}});
  w.Element("Empty", "");
  w.UintElement("N", 18446744073709551615ULL);
  w.BoolElement("B", false);
  w.EndElement();
  w.EmptyElement("E");
  w.TimeElement("T", ExampleTime());
  w.ETagElement("abc-2");
  w.Text("tail&");
  EXPECT_EQ(w.Finish(),
            std::string(kDecl) +
                "<Root xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><A attr=\"v&quot;&lt;&amp;&gt;&#10;\">"
                "<Empty></Empty><N>18446744073709551615</N><B>false</B></A><E/>"
                "<T>2009-10-12T17:50:30.000Z</T><ETag>&quot;abc-2&quot;</ETag>tail&amp;</Root>");
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

TEST(XmlErrorDocument, Golden) {
  Error error(ErrorCode::kNoSuchKey);
  error.resource = "/mybucket/myfoto.jpg";
  EXPECT_EQ(ErrorDocument(error, "4442587FB7D0A2F9", "host/id="),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Error><Code>NoSuchKey</Code><Message>" +
                std::string(Describe(ErrorCode::kNoSuchKey).message) +
                "</Message><Resource>/mybucket/myfoto.jpg</Resource>"
                "<RequestId>4442587FB7D0A2F9</RequestId><HostId>host/id=</HostId></Error>");
}

TEST(XmlErrorDocument, CustomMessageEscapedAndResourceOptional) {
  Error error(ErrorCode::kInvalidArgument, "Argument <max-keys> & \"more\"");
  EXPECT_EQ(ErrorDocument(error, "r", "h"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Error><Code>InvalidArgument</Code><Message>Argument &lt;max-keys&gt; &amp; &quot;more&quot;</Message>"
            "<RequestId>r</RequestId><HostId>h</HostId></Error>");
}

// SignatureDoesNotMatch carries what AWS sends with it: the key, the string to sign (and its bytes)
// and the signature received; SigV4 adds the canonical request.
TEST(XmlErrorDocument, SignatureDoesNotMatchDetails) {
  Error error(ErrorCode::kSignatureDoesNotMatch);
  error.access_key_id = "AKID";
  error.string_to_sign = "GET\n/b";
  error.signature_provided = "c2ln";
  EXPECT_EQ(ErrorDocument(error, "r", "h"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Error><Code>SignatureDoesNotMatch</Code><Message>" +
                std::string(Describe(ErrorCode::kSignatureDoesNotMatch).message) +
                "</Message><AWSAccessKeyId>AKID</AWSAccessKeyId><StringToSign>GET\n/b</StringToSign>"
                "<SignatureProvided>c2ln</SignatureProvided><StringToSignBytes>47 45 54 0a 2f 62</StringToSignBytes>"
                "<RequestId>r</RequestId><HostId>h</HostId></Error>");
  error.canonical_request = "GET";
  EXPECT_NE(
      ErrorDocument(error, "r", "h")
          .find("<CanonicalRequest>GET</CanonicalRequest><CanonicalRequestBytes>47 45 54</CanonicalRequestBytes>"),
      std::string::npos);
}

TEST(XmlListObjectsV2, Golden) {
  ListObjectsV2Result result;
  result.bucket = "bucket";
  result.prefix = "photos/";
  result.delimiter = "/";
  result.max_keys = 2;
  result.is_truncated = true;
  result.next_continuation_token = "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=";
  ObjectEntry entry;
  entry.key = "photos/a&b.jpg";
  entry.last_modified = ExampleTime();
  entry.etag = "fba9dede5f27731c9771645a39863328";
  entry.size = 434234;
  result.contents.push_back(entry);
  result.common_prefixes.push_back("photos/2006/");
  EXPECT_EQ(ListObjectsV2Document(result),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Name>bucket</Name><Prefix>photos/</Prefix>"
            "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
            "<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
            "<Contents><Key>photos/a&amp;b.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
            "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            "<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes>"
            "</ListBucketResult>");
}

TEST(XmlListObjectsV2, EmptyListingAndOptionalFields) {
  ListObjectsV2Result result;
  result.bucket = "b";
  result.continuation_token = "tok";
  result.start_after = "a b";
  ObjectEntry entry;
  entry.key = "k";
  entry.etag = "e";
  entry.checksum_algorithm = "CRC32";
  entry.owner = Owner{"owner-id", ""};
  result.contents.push_back(entry);
  const std::string doc = ListObjectsV2Document(result);
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(doc, parsed);
  const pugi::xml_node root = Root(parsed);
  EXPECT_STREQ(root.child_value("Prefix"), "");
  EXPECT_STREQ(root.child_value("ContinuationToken"), "tok");
  EXPECT_STREQ(root.child_value("StartAfter"), "a b");
  EXPECT_STREQ(root.child_value("KeyCount"), "1");
  EXPECT_STREQ(root.child_value("IsTruncated"), "false");
  EXPECT_FALSE(root.child("Delimiter"));
  EXPECT_FALSE(root.child("EncodingType"));
  EXPECT_FALSE(root.child("NextContinuationToken"));
  const pugi::xml_node contents = root.child("Contents");
  EXPECT_STREQ(contents.child_value("ChecksumAlgorithm"), "CRC32");
  EXPECT_STREQ(contents.child("Owner").child_value("ID"), "owner-id");
  EXPECT_FALSE(contents.child("Owner").child("DisplayName"));
  EXPECT_STREQ(contents.child_value("LastModified"), "1970-01-01T00:00:00.000Z");
}

TEST(XmlListObjectsV2, UrlEncodingAppliesToKeysAndPrefixes) {
  ListObjectsV2Result result;
  result.bucket = "b";
  result.prefix = "run books/";
  result.delimiter = " ";
  result.start_after = "a+b";
  result.continuation_token = "opaque+/=";  // tokens are never encoded
  result.url_encoding = true;
  ObjectEntry entry;
  entry.key = "run books/\x01&x+y";
  result.contents.push_back(entry);
  result.common_prefixes.push_back("run books/\xED\x95\x9C/");
  const std::string doc = ListObjectsV2Document(result);
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(doc, parsed);
  const pugi::xml_node root = Root(parsed);
  EXPECT_STREQ(root.child_value("Prefix"), "run+books/");
  EXPECT_STREQ(root.child_value("Delimiter"), "+");
  EXPECT_STREQ(root.child_value("StartAfter"), "a%2Bb");
  EXPECT_STREQ(root.child_value("ContinuationToken"), "opaque+/=");
  EXPECT_STREQ(root.child_value("EncodingType"), "url");
  EXPECT_STREQ(root.child("Contents").child_value("Key"), "run+books/%01%26x%2By");
  EXPECT_STREQ(root.child("CommonPrefixes").child_value("Prefix"), "run+books/%ED%95%9C/");
}

TEST(XmlListObjectsV2, HostileKeysStayWellFormed) {
  const std::vector<std::string> keys = {
      "a&b",          "<script>",   "\"quoted\"",
      "it's",         "]]>",        "x\ry",
      "tab\there",    "nl\nhere",   std::string("nul\0byte", 8),
      "bell\x07",     "esc\x1B[0m", "bad utf8 \xFF\xFE",
      "\xEF\xBF\xBE", "&#1;",
  };
  ListObjectsV2Result result;
  result.bucket = "b";
  for (const std::string& key : keys) {
    ObjectEntry entry;
    entry.key = key;
    entry.etag = "e";
    result.contents.push_back(entry);
  }
  const std::string doc = ListObjectsV2Document(result);
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(doc, parsed);
  std::vector<std::string> read;
  for (pugi::xml_node c : Root(parsed).children("Contents")) {
    read.push_back(c.child_value("Key"));
  }
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(read, (std::vector<std::string>{
                      "a&b",
                      "<script>",
                      "\"quoted\"",
                      "it's",
                      "]]>",
                      "x\ry",
                      "tab\there",
                      "nl\nhere",
                      "nul" + fffd + "byte",
                      "bell" + fffd,
                      "esc" + fffd + "[0m",
                      "bad utf8 " + fffd + fffd,
                      fffd,
                      "&#1;",
                  }));

  // With encoding-type=url every key comes back exactly after decoding.
  result.url_encoding = true;
  const std::string encoded = ListObjectsV2Document(result);
  pugi::xml_document parsed_encoded;
  ExpectStrictlyWellFormed(encoded, parsed_encoded);
  size_t i = 0;
  for (pugi::xml_node c : Root(parsed_encoded).children("Contents")) {
    EXPECT_EQ(c.child_value("Key"), UrlEncodeKey(keys[i++]));
  }
  EXPECT_EQ(i, keys.size());
}

TEST(XmlListObjectsV1, NextMarkerOnlyWithDelimiterWhenTruncated) {
  ListObjectsV1Result result;
  result.bucket = "b";
  result.marker = "m";
  result.next_marker = "photos/";
  result.is_truncated = true;
  ObjectEntry entry;
  entry.key = "k";
  entry.etag = "e";
  entry.owner = Owner{"id", "name"};
  result.contents.push_back(entry);

  pugi::xml_document no_delimiter;
  ExpectStrictlyWellFormed(ListObjectsV1Document(result), no_delimiter);
  EXPECT_FALSE(Root(no_delimiter).child("NextMarker"));
  EXPECT_FALSE(Root(no_delimiter).child("KeyCount"));
  EXPECT_STREQ(Root(no_delimiter).child_value("Marker"), "m");

  result.delimiter = "/";
  EXPECT_EQ(ListObjectsV1Document(result),
            std::string(kDecl) +
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Name>b</Name><Prefix></Prefix><Marker>m</Marker><NextMarker>photos/</NextMarker>"
                "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
                "<Contents><Key>k</Key><LastModified>1970-01-01T00:00:00.000Z</LastModified>"
                "<ETag>&quot;e&quot;</ETag><Size>0</Size><Owner><ID>id</ID><DisplayName>name</DisplayName></Owner>"
                "<StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>");

  result.is_truncated = false;
  pugi::xml_document not_truncated;
  ExpectStrictlyWellFormed(ListObjectsV1Document(result), not_truncated);
  EXPECT_FALSE(Root(not_truncated).child("NextMarker"));
}

TEST(XmlListObjectsV1, UrlEncoding) {
  ListObjectsV1Result result;
  result.bucket = "b";
  result.prefix = "a b";
  result.marker = "c+d";
  result.delimiter = "/";
  result.next_marker = "e f/";
  result.is_truncated = true;
  result.url_encoding = true;
  result.common_prefixes.push_back("e f/");
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(ListObjectsV1Document(result), parsed);
  const pugi::xml_node root = Root(parsed);
  EXPECT_STREQ(root.child_value("Prefix"), "a+b");
  EXPECT_STREQ(root.child_value("Marker"), "c%2Bd");
  EXPECT_STREQ(root.child_value("NextMarker"), "e+f/");
  EXPECT_STREQ(root.child_value("EncodingType"), "url");
  EXPECT_STREQ(root.child("CommonPrefixes").child_value("Prefix"), "e+f/");
}

TEST(XmlListAllMyBuckets, Document) {
  ListAllMyBucketsResult result;
  result.owner = {"owner-id", "owner"};
  result.buckets.push_back({"alpha", ExampleTime()});
  result.buckets.push_back({"beta", FromUnixMillis(1255369830123)});
  EXPECT_EQ(ListAllMyBucketsDocument(result),
            std::string(kDecl) +
                "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Owner><ID>owner-id</ID><DisplayName>owner</DisplayName></Owner><Buckets>"
                "<Bucket><Name>alpha</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket>"
                "<Bucket><Name>beta</Name><CreationDate>2009-10-12T17:50:30.123Z</CreationDate></Bucket>"
                "</Buckets></ListAllMyBucketsResult>");
  pugi::xml_document empty;
  ExpectStrictlyWellFormed(ListAllMyBucketsDocument({}), empty);
  EXPECT_TRUE(Root(empty).child("Buckets"));
}

TEST(XmlListVersions, Document) {
  ListVersionsResult result;
  result.bucket = "b";
  result.prefix = "my";
  result.max_keys = 1;
  result.is_truncated = true;
  result.next_key_marker = "my image.jpg";
  result.next_version_id_marker = "null";
  result.url_encoding = true;
  VersionEntry v;
  v.key = "my image.jpg";
  v.last_modified = ExampleTime();
  v.etag = "fba9";
  v.size = 434234;
  v.owner = {"id", "name"};
  result.versions.push_back(v);
  const std::string doc = ListVersionsDocument(result);
  EXPECT_EQ(doc, std::string(kDecl) +
                     "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                     "<Name>b</Name><Prefix>my</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"
                     "<NextKeyMarker>my+image.jpg</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>"
                     "<MaxKeys>1</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                     "<Version><Key>my+image.jpg</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
                     "<LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9&quot;</ETag>"
                     "<Size>434234</Size><StorageClass>STANDARD</StorageClass>"
                     "<Owner><ID>id</ID><DisplayName>name</DisplayName></Owner></Version>"
                     "</ListVersionsResult>");
}

TEST(XmlListVersions, DeleteMarkersAmongVersions) {
  ListVersionsResult result;
  result.bucket = "b";
  VersionEntry marker;
  marker.delete_marker = true;
  marker.key = "k";
  marker.version_id = "0123";
  marker.last_modified = ExampleTime();
  marker.etag = "ignored";
  marker.owner = {"id", ""};
  result.versions.push_back(marker);
  VersionEntry older;
  older.key = "k";
  older.version_id = "null";
  older.is_latest = false;
  older.last_modified = ExampleTime();
  older.etag = "fba9";
  older.size = 3;
  older.owner = {"id", ""};
  result.versions.push_back(older);
  EXPECT_EQ(ListVersionsDocument(result),
            std::string(kDecl) +
                "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Name>b</Name><Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"
                "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
                "<DeleteMarker><Key>k</Key><VersionId>0123</VersionId><IsLatest>true</IsLatest>"
                "<LastModified>2009-10-12T17:50:30.000Z</LastModified><Owner><ID>id</ID></Owner></DeleteMarker>"
                "<Version><Key>k</Key><VersionId>null</VersionId><IsLatest>false</IsLatest>"
                "<LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9&quot;</ETag>"
                "<Size>3</Size><StorageClass>STANDARD</StorageClass><Owner><ID>id</ID></Owner></Version>"
                "</ListVersionsResult>");
}

TEST(XmlVersioningConfiguration, Parses) {
  auto enabled = ParseVersioningConfiguration(
      "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status> Enabled </Status>"
      "</VersioningConfiguration>");
  ASSERT_OK(enabled);
  EXPECT_EQ(enabled->status, "Enabled");
  EXPECT_FALSE(enabled->mfa_delete);
  auto suspended = ParseVersioningConfiguration(
      "<VersioningConfiguration><MfaDelete>Enabled</MfaDelete><Status>Suspended</Status></VersioningConfiguration>");
  ASSERT_OK(suspended);
  EXPECT_EQ(suspended->status, "Suspended");
  EXPECT_TRUE(suspended->mfa_delete);
  for (std::string_view bad : {
           "",
           "<VersioningConfiguration/>",
           "<VersioningConfiguration><Status></Status></VersioningConfiguration>",
           "<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
           "<VersioningConfiguration><Status>Disabled</Status></VersioningConfiguration>",
           "<VersioningConfiguration><Status>Enabled</Status><Status>Enabled</Status></VersioningConfiguration>",
           "<VersioningConfiguration><Status>Enabled</Status><MfaDelete>yes</MfaDelete></VersioningConfiguration>",
           "<Versioning><Status>Enabled</Status></Versioning>",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseVersioningConfiguration(bad)), ErrorCode::kMalformedXML);
  }
}

TEST(XmlObjectLock, ConfigurationParsesAndRoundTrips) {
  auto bare = ParseObjectLockConfiguration(
      "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ObjectLockEnabled>Enabled"
      "</ObjectLockEnabled></ObjectLockConfiguration>");
  ASSERT_OK(bare);
  EXPECT_EQ(bare->mode, "");
  EXPECT_EQ(ObjectLockConfigurationDocument(*bare),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ObjectLockConfiguration "
            "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
            "</ObjectLockConfiguration>");
  auto years = ParseObjectLockConfiguration(
      "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>"
      "<Mode>COMPLIANCE</Mode><Years> 10 </Years></DefaultRetention></Rule></ObjectLockConfiguration>");
  ASSERT_OK(years);
  EXPECT_EQ(years->mode, "COMPLIANCE");
  EXPECT_EQ(years->years, 10u);
  EXPECT_EQ(years->days, 0u);
  EXPECT_NE(ObjectLockConfigurationDocument(*years).find(
                "<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>10</Years></DefaultRetention></Rule>"),
            std::string::npos);
  const std::string head = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>";
  auto rule = [&](std::string_view inner) {
    return head + "<Rule><DefaultRetention>" + std::string(inner) +
           "</DefaultRetention></Rule></ObjectLockConfiguration>";
  };
  for (const std::string& bad : {
           std::string("<ObjectLockConfiguration/>"),
           std::string(
               "<ObjectLockConfiguration><ObjectLockEnabled>enabled</ObjectLockEnabled></ObjectLockConfiguration>"),
           head + "<Rule/></ObjectLockConfiguration>",
           rule("<Mode>WORM</Mode><Days>1</Days>"),
           rule("<Days>1</Days>"),
           rule("<Mode>GOVERNANCE</Mode>"),
           rule("<Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>"),
           rule("<Mode>GOVERNANCE</Mode><Days>one</Days>"),
           rule("<Mode>GOVERNANCE</Mode><Days>1.5</Days>"),
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseObjectLockConfiguration(bad)), ErrorCode::kMalformedXML);
  }
  for (const std::string& bad :
       {rule("<Mode>GOVERNANCE</Mode><Days>0</Days>"), rule("<Mode>GOVERNANCE</Mode><Days>-3</Days>"),
        rule("<Mode>GOVERNANCE</Mode><Days>36501</Days>"), rule("<Mode>GOVERNANCE</Mode><Years>101</Years>"),
        rule("<Mode>GOVERNANCE</Mode><Years>99999999999999999999</Years>")}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseObjectLockConfiguration(bad)), ErrorCode::kInvalidArgument);
  }
}

TEST(XmlObjectLock, RetentionAndLegalHold) {
  auto set = ParseRetention(
      "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00.000000Z</RetainUntilDate></Retention>");
  ASSERT_OK(set);
  EXPECT_EQ(set->mode, "GOVERNANCE");
  EXPECT_EQ(set->retain_until, 1893456000000);
  EXPECT_NE(RetentionDocument("GOVERNANCE", 1893456000000)
                .find("<Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00.000Z</RetainUntilDate>"),
            std::string::npos);
  auto removed = ParseRetention("<Retention/>");
  ASSERT_OK(removed);
  EXPECT_EQ(removed->mode, "");
  for (std::string_view bad : {"", "<Retention><Mode>GOVERNANCE</Mode></Retention>",
                               "<Retention><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
                               "<Retention><Mode>LOCKED</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate>"
                               "</Retention>",
                               "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>tomorrow</RetainUntilDate>"
                               "</Retention>"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseRetention(bad)), ErrorCode::kMalformedXML);
  }
  EXPECT_EQ(*ParseLegalHold("<LegalHold><Status>ON</Status></LegalHold>"), "ON");
  EXPECT_EQ(*ParseLegalHold("<LegalHold><Status> OFF </Status></LegalHold>"), "OFF");
  for (std::string_view bad : {"<LegalHold/>", "<LegalHold><Status>on</Status></LegalHold>",
                               "<LegalHold><Status>ON</Status><Status>OFF</Status></LegalHold>"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(CodeOf(ParseLegalHold(bad)), ErrorCode::kMalformedXML);
  }
  EXPECT_NE(LegalHoldDocument("ON").find("<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>ON"),
            std::string::npos);
}

TEST(XmlLifecycle, ParsesFiltersAndActionsAndWritesThemBack) {
  auto config = ParseLifecycleConfiguration(
      "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Rule><ID>logs</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
      "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Enabled</Status>"
      "<Expiration><Days>30</Days></Expiration><NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays>"
      "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>"
      "<Rule><Prefix>tmp/</Prefix><Status>Disabled</Status><AbortIncompleteMultipartUpload>"
      "<DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"
      "<Rule><ID>dated</ID><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00.000Z</Date>"
      "</Expiration></Rule><Rule><ID>no-op</ID><Filter/><Status>Enabled</Status><Expiration>"
      "<ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration></Rule></LifecycleConfiguration>");
  ASSERT_OK(config);
  ASSERT_EQ(config->rules.size(), 4u);
  EXPECT_EQ(config->rules[3].expired_object_delete_marker, false);
  const auto& logs = config->rules[0];
  EXPECT_EQ(logs.filter.prefix, "logs/");
  EXPECT_EQ(logs.filter.tags, (catalog::Tags{{"k", "v"}}));
  EXPECT_EQ(logs.filter.size_greater_than, 10u);
  EXPECT_EQ(logs.expiration_days, 30u);
  EXPECT_EQ(logs.noncurrent_days, 7u);
  EXPECT_EQ(logs.newer_noncurrent_versions, 2u);
  const auto& tmp = config->rules[1];
  EXPECT_FALSE(tmp.enabled);
  EXPECT_EQ(tmp.id.size(), 32u);  // generated
  EXPECT_EQ(tmp.filter_form, "prefix");
  EXPECT_EQ(tmp.abort_incomplete_days, 3u);
  EXPECT_EQ(config->rules[2].expiration_date, 1893456000000);
  const std::string doc = LifecycleConfigurationDocument(*config);
  EXPECT_NE(doc.find("<Rule><ID>logs</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
                     "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Enabled</Status>"),
            std::string::npos)
      << doc;
  EXPECT_NE(doc.find("<Prefix>tmp/</Prefix><Status>Disabled</Status>"), std::string::npos) << doc;
  EXPECT_NE(doc.find("<Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration>"),
            std::string::npos)
      << doc;
  EXPECT_NE(doc.find("<Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Expiration><Date>"
                     "2030-01-01T00:00:00.000Z</Date></Expiration>"),
            std::string::npos)
      << doc;
  auto again = ParseLifecycleConfiguration(doc);
  ASSERT_OK(again);
  EXPECT_EQ(LifecycleConfigurationDocument(*again), doc);
}

TEST(XmlLifecycle, RefusesWhatS3Refuses) {
  auto rule = [](std::string_view inner) {
    return "<LifecycleConfiguration><Rule>" + std::string(inner) + "</Rule></LifecycleConfiguration>";
  };
  const std::string expire = "<Expiration><Days>1</Days></Expiration>";
  struct Case {
    std::string xml;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"<LifecycleConfiguration/>", ErrorCode::kMalformedXML},
      {rule("<Status>On</Status>" + expire), ErrorCode::kMalformedXML},
      {rule("<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>" +
            expire),
       ErrorCode::kMalformedXML},
      {rule("<Filter/><Prefix>a</Prefix><Status>Enabled</Status>" + expire), ErrorCode::kMalformedXML},
      {rule("<Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>"),
       ErrorCode::kMalformedXML},
      {rule("<Status>Enabled</Status><Expiration/>"), ErrorCode::kMalformedXML},
      {rule("<Status>Enabled</Status><Expiration><Days>x</Days></Expiration>"), ErrorCode::kMalformedXML},
      {rule("<Status>Enabled</Status><Expiration><Days>0</Days></Expiration>"), ErrorCode::kInvalidArgument},
      {rule("<Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>"), ErrorCode::kInvalidArgument},
      {rule("<Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>"),
       ErrorCode::kInvalidArgument},
      {rule("<Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
            "<NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>"),
       ErrorCode::kInvalidArgument},
      {rule("<ID>" + std::string(256, 'i') + "</ID><Status>Enabled</Status>" + expire), ErrorCode::kInvalidArgument},
      {"<LifecycleConfiguration><Rule><ID>same</ID><Status>Enabled</Status>" + expire +
           "</Rule><Rule><ID>same</ID><Status>Enabled</Status>" + expire + "</Rule></LifecycleConfiguration>",
       ErrorCode::kInvalidArgument},
      {rule("<Status>Enabled</Status>"), ErrorCode::kInvalidRequest},
      {rule("<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>"
            "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
            "</AbortIncompleteMultipartUpload>"),
       ErrorCode::kInvalidRequest},
      {rule("<Status>Enabled</Status><Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>"),
       ErrorCode::kInvalidStorageClass},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.xml);
    EXPECT_EQ(CodeOf(ParseLifecycleConfiguration(c.xml)), c.code);
  }
  std::string many = "<LifecycleConfiguration>";
  for (int i = 0; i <= 1000; ++i) many += "<Rule><Status>Enabled</Status>" + expire + "</Rule>";
  EXPECT_EQ(CodeOf(ParseLifecycleConfiguration(many + "</LifecycleConfiguration>")), ErrorCode::kMalformedXML);
}

TEST(XmlDeleteResult, DeleteMarkers) {
  DeleteResult result;
  DeleteOutcome added{"k", std::nullopt, std::nullopt};
  added.delete_marker_version_id = "m1";
  result.outcomes.push_back(added);
  DeleteOutcome removed{"k", "m0", std::nullopt};
  removed.delete_marker_version_id = "m0";
  result.outcomes.push_back(removed);
  EXPECT_EQ(DeleteResultDocument(result),
            std::string(kDecl) +
                "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Deleted><Key>k</Key><DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>m1"
                "</DeleteMarkerVersionId></Deleted>"
                "<Deleted><Key>k</Key><VersionId>m0</VersionId><DeleteMarker>true</DeleteMarker>"
                "<DeleteMarkerVersionId>m0</DeleteMarkerVersionId></Deleted>"
                "</DeleteResult>");
}

TEST(XmlLocationConstraint, Documents) {
  const std::string empty =
      std::string(kDecl) + "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>";
  EXPECT_EQ(LocationConstraintDocument("us-east-1"), empty);
  EXPECT_EQ(LocationConstraintDocument(""), empty);
  EXPECT_EQ(LocationConstraintDocument("eu-west-3"),
            std::string(kDecl) +
                "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">eu-west-3</LocationConstraint>");
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(LocationConstraintDocument("a<b"), parsed);
  EXPECT_STREQ(Root(parsed).child_value(), "a<b");
}

TEST(XmlAccessControlPolicy, Document) {
  const std::string doc = AccessControlPolicyDocument({"75aa57f0", "owner"});
  EXPECT_EQ(doc, std::string(kDecl) +
                     "<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                     "<Owner><ID>75aa57f0</ID><DisplayName>owner</DisplayName></Owner>"
                     "<AccessControlList><Grant>"
                     "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">"
                     "<ID>75aa57f0</ID><DisplayName>owner</DisplayName></Grantee>"
                     "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>");
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(doc, parsed);
}

TEST(XmlVersioningConfiguration, Documents) {
  EXPECT_EQ(VersioningConfigurationDocument(""),
            std::string(kDecl) + "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>");
  EXPECT_EQ(VersioningConfigurationDocument("Suspended"),
            std::string(kDecl) +
                "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Status>Suspended</Status></VersioningConfiguration>");
}

TEST(XmlCopyResult, Documents) {
  CopyResult result{ExampleTime(), "9b2cf535f27731c974343645a3985328", {{"ChecksumCRC32", "AAAAAA=="}}};
  EXPECT_EQ(CopyObjectResultDocument(result), std::string(kDecl) +
                                                  "<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                                  "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                                                  "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
                                                  "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></CopyObjectResult>");
  result.checksums.clear();
  EXPECT_EQ(CopyPartResultDocument(result),
            std::string(kDecl) +
                "<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyPartResult>");
}

TEST(XmlMultipart, InitiateAndCompleteDocuments) {
  EXPECT_EQ(InitiateMultipartUploadDocument("bucket", "a&b.bin", "VXBsb2FkSUQ"),
            std::string(kDecl) +
                "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Bucket>bucket</Bucket><Key>a&amp;b.bin</Key><UploadId>VXBsb2FkSUQ</UploadId>"
                "</InitiateMultipartUploadResult>");
  CompleteMultipartUploadResult done;
  done.location = "http://localhost/bucket/a%26b.bin";
  done.bucket = "bucket";
  done.key = "a&b.bin";
  done.etag = "3858f62230ac3c915f300c664312c11f-9";
  done.checksums = {{"ChecksumSHA256", "s"}, {"ChecksumCRC32", "c"}};
  done.checksum_type = "COMPOSITE";
  EXPECT_EQ(CompleteMultipartUploadDocument(done),
            std::string(kDecl) +
                "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Location>http://localhost/bucket/a%26b.bin</Location><Bucket>bucket</Bucket>"
                "<Key>a&amp;b.bin</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
                "<ChecksumCRC32>c</ChecksumCRC32><ChecksumSHA256>s</ChecksumSHA256>"
                "<ChecksumType>COMPOSITE</ChecksumType></CompleteMultipartUploadResult>");
}

TEST(XmlMultipart, ListPartsDocument) {
  ListPartsResult result;
  result.bucket = "example-bucket";
  result.key = "example-object";
  result.upload_id = "XXBsb2FkIElE";
  result.initiator = {"arn:aws:iam::111122223333:user/some-user", "some-user"};
  result.owner = {"75aa57f0", "someName"};
  result.part_number_marker = 1;
  result.next_part_number_marker = 3;
  result.max_parts = 2;
  result.is_truncated = true;
  result.parts.push_back({2, ExampleTime(), "7778aef83f66abc1fa1e8477f296d394", 10485760, {}});
  result.parts.push_back({3, ExampleTime(), "aaaa", 10485760, {{"ChecksumCRC32C", "x=="}}});
  EXPECT_EQ(ListPartsDocument(result),
            std::string(kDecl) +
                "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>XXBsb2FkIElE</UploadId>"
                "<Initiator><ID>arn:aws:iam::111122223333:user/some-user</ID><DisplayName>some-user</DisplayName>"
                "</Initiator><Owner><ID>75aa57f0</ID><DisplayName>someName</DisplayName></Owner>"
                "<StorageClass>STANDARD</StorageClass><PartNumberMarker>1</PartNumberMarker>"
                "<NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts>"
                "<IsTruncated>true</IsTruncated>"
                "<Part><PartNumber>2</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                "<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>"
                "<Part><PartNumber>3</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                "<ETag>&quot;aaaa&quot;</ETag><Size>10485760</Size><ChecksumCRC32C>x==</ChecksumCRC32C></Part>"
                "</ListPartsResult>");
}

TEST(XmlObjectAttributes, WritesWhatIsSetInAwsOrder) {
  ObjectAttributesResult result;
  result.etag = "3858f62230ac3c915f300c664312c11f-2";
  result.checksums = {{"ChecksumCRC32", "i9Ah1A==-2"}};
  result.checksum_type = "COMPOSITE";
  ObjectAttributesResult::PartsSection parts;
  parts.parts_count = 2;
  parts.part_number_marker = 1;
  parts.next_part_number_marker = 2;
  parts.max_parts = 1;
  parts.is_truncated = false;
  parts.parts.push_back({.part_number = 2, .size = 1000, .checksums = {{"ChecksumCRC32", "AAAAAA=="}}});
  result.object_parts = parts;
  result.storage_class = "STANDARD";
  result.object_size = 5243880;
  EXPECT_EQ(ObjectAttributesDocument(result),
            std::string(kDecl) +
                "<GetObjectAttributesResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<ETag>3858f62230ac3c915f300c664312c11f-2</ETag>"
                "<Checksum><ChecksumCRC32>i9Ah1A==-2</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType></Checksum>"
                "<ObjectParts><PartsCount>2</PartsCount><PartNumberMarker>1</PartNumberMarker>"
                "<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>1</MaxParts><IsTruncated>false</IsTruncated>"
                "<Part><ChecksumCRC32>AAAAAA==</ChecksumCRC32><PartNumber>2</PartNumber><Size>1000</Size></Part>"
                "</ObjectParts><StorageClass>STANDARD</StorageClass><ObjectSize>5243880</ObjectSize>"
                "</GetObjectAttributesResponse>");
  // Only what was asked for (and exists) is written.
  ObjectAttributesResult size_only;
  size_only.object_size = 0;
  EXPECT_EQ(ObjectAttributesDocument(size_only),
            std::string(kDecl) +
                "<GetObjectAttributesResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<ObjectSize>0</ObjectSize></GetObjectAttributesResponse>");
}

TEST(XmlMultipart, ListMultipartUploadsDocument) {
  ListMultipartUploadsResult result;
  result.bucket = "bucket";
  result.next_key_marker = "my movie.m2ts";
  result.next_upload_id_marker = "YW55";
  result.max_uploads = 1;
  result.is_truncated = true;
  UploadEntry upload;
  upload.key = "my movie.m2ts";
  upload.upload_id = "YW55";
  upload.initiator = {"init", ""};
  upload.owner = {"owner", "name"};
  upload.initiated = ExampleTime();
  result.uploads.push_back(upload);
  EXPECT_EQ(ListMultipartUploadsDocument(result),
            std::string(kDecl) +
                "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
                "<NextKeyMarker>my movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55</NextUploadIdMarker>"
                "<MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated>"
                "<Upload><Key>my movie.m2ts</Key><UploadId>YW55</UploadId><Initiator><ID>init</ID></Initiator>"
                "<Owner><ID>owner</ID><DisplayName>name</DisplayName></Owner><StorageClass>STANDARD</StorageClass>"
                "<Initiated>2009-10-12T17:50:30.000Z</Initiated></Upload></ListMultipartUploadsResult>");

  result.prefix = "my ";
  result.delimiter = "/";
  result.url_encoding = true;
  result.common_prefixes.push_back("my dir/");
  pugi::xml_document parsed;
  ExpectStrictlyWellFormed(ListMultipartUploadsDocument(result), parsed);
  const pugi::xml_node root = Root(parsed);
  EXPECT_STREQ(root.child_value("Prefix"), "my+");
  EXPECT_STREQ(root.child_value("Delimiter"), "/");
  EXPECT_STREQ(root.child_value("EncodingType"), "url");
  EXPECT_STREQ(root.child_value("NextKeyMarker"), "my+movie.m2ts");
  EXPECT_STREQ(root.child("Upload").child_value("Key"), "my+movie.m2ts");
  EXPECT_STREQ(root.child("CommonPrefixes").child_value("Prefix"), "my+dir/");
}

TEST(XmlDeleteResult, VerboseAndQuiet) {
  DeleteResult result;
  result.outcomes.push_back({"sample1.txt", std::nullopt, std::nullopt});
  result.outcomes.push_back({"a&b", "null", Error(ErrorCode::kAccessDenied)});
  result.outcomes.push_back({"sample2.txt", "null", std::nullopt});
  const std::string access_denied(Describe(ErrorCode::kAccessDenied).message);
  EXPECT_EQ(DeleteResultDocument(result),
            std::string(kDecl) +
                "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Deleted><Key>sample1.txt</Key></Deleted>"
                "<Error><Key>a&amp;b</Key><VersionId>null</VersionId><Code>AccessDenied</Code>"
                "<Message>" +
                access_denied +
                "</Message></Error>"
                "<Deleted><Key>sample2.txt</Key><VersionId>null</VersionId></Deleted>"
                "</DeleteResult>");
  result.quiet = true;
  EXPECT_EQ(DeleteResultDocument(result),
            std::string(kDecl) +
                "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Error><Key>a&amp;b</Key><VersionId>null</VersionId><Code>AccessDenied</Code>"
                "<Message>" +
                access_denied + "</Message></Error></DeleteResult>");
  result.outcomes.erase(result.outcomes.begin() + 1);
  EXPECT_EQ(DeleteResultDocument(result),
            std::string(kDecl) + "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></DeleteResult>");
}

TEST(XmlDocuments, AllHaveTheS3NamespaceButError) {
  const std::vector<std::pair<std::string, std::string>> docs = {
      {"ListAllMyBucketsResult", ListAllMyBucketsDocument({})},
      {"ListBucketResult", ListObjectsV2Document({})},
      {"ListBucketResult", ListObjectsV1Document({})},
      {"ListVersionsResult", ListVersionsDocument({})},
      {"LocationConstraint", LocationConstraintDocument("eu-west-3")},
      {"AccessControlPolicy", AccessControlPolicyDocument({})},
      {"VersioningConfiguration", VersioningConfigurationDocument("Enabled")},
      {"ServerSideEncryptionConfiguration", ServerSideEncryptionConfigurationDocument({})},
      {"CopyObjectResult", CopyObjectResultDocument({})},
      {"CopyPartResult", CopyPartResultDocument({})},
      {"InitiateMultipartUploadResult", InitiateMultipartUploadDocument("b", "k", "u")},
      {"CompleteMultipartUploadResult", CompleteMultipartUploadDocument({})},
      {"ListPartsResult", ListPartsDocument({})},
      {"GetObjectAttributesResponse", ObjectAttributesDocument({})},
      {"ListMultipartUploadsResult", ListMultipartUploadsDocument({})},
      {"DeleteResult", DeleteResultDocument({})},
  };
  for (const auto& [root_name, doc] : docs) {
    SCOPED_TRACE(root_name);
    pugi::xml_document parsed;
    ExpectStrictlyWellFormed(doc, parsed);
    EXPECT_EQ(std::string(Root(parsed).name()), root_name);
    EXPECT_EQ(std::string(Root(parsed).attribute("xmlns").value()), kNs);
  }
  pugi::xml_document error;
  ExpectStrictlyWellFormed(ErrorDocument(Error(ErrorCode::kInternalError), "r", "h"), error);
  EXPECT_STREQ(Root(error).name(), "Error");
  EXPECT_FALSE(Root(error).attribute("xmlns"));
}

}  // namespace
}  // namespace coffre::s3
