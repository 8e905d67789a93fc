#include "http/errors.h"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace coffre::http::internal {
namespace {

namespace beast = boost::beast;

TEST(ClassifyBodyError, MapsTransportAndFramingErrors) {
  EXPECT_EQ(ClassifyBodyError({}), BodyError::kNone);
  EXPECT_EQ(ClassifyBodyError(beast::error::timeout), BodyError::kTimeout);
  EXPECT_EQ(ClassifyBodyError(bhttp::error::partial_message), BodyError::kDisconnected);
  EXPECT_EQ(ClassifyBodyError(bhttp::error::end_of_stream), BodyError::kDisconnected);
  EXPECT_EQ(ClassifyBodyError(asio::error::connection_reset), BodyError::kDisconnected);
  EXPECT_EQ(ClassifyBodyError(asio::error::operation_aborted), BodyError::kDisconnected);
  EXPECT_EQ(ClassifyBodyError(bhttp::error::bad_chunk), BodyError::kMalformed);
  EXPECT_EQ(ClassifyBodyError(bhttp::error::bad_chunk_extension), BodyError::kMalformed);
  EXPECT_EQ(ClassifyBodyError(bhttp::error::body_limit), BodyError::kTooLarge);
}

TEST(IsMalformedRequest, OnlyParseErrorsAreMalformed) {
  EXPECT_TRUE(IsMalformedRequest(bhttp::error::bad_method));
  EXPECT_TRUE(IsMalformedRequest(bhttp::error::bad_transfer_encoding));
  EXPECT_TRUE(IsMalformedRequest(bhttp::error::multiple_content_length));
  EXPECT_FALSE(IsMalformedRequest(bhttp::error::end_of_stream));
  EXPECT_FALSE(IsMalformedRequest(bhttp::error::partial_message));
  EXPECT_FALSE(IsMalformedRequest(beast::error::timeout));
  EXPECT_FALSE(IsMalformedRequest(asio::error::eof));
}

TEST(XmlErrorBody, HasTheShapeS3ClientsParse) {
  EXPECT_EQ(XmlErrorBody("SlowDown", "Please reduce your request rate."),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
            "<Message>Please reduce your request rate.</Message></Error>");
}

}  // namespace
}  // namespace coffre::http::internal
