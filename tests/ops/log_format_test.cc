#include "coffre/ops/log_format.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace coffre::ops {
namespace {

// 2026-11-30T00:57:44.123Z
const auto kTime = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'796'000'264'123));

nlohmann::json Parse(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one object per line";
  return nlohmann::json::parse(line);
}

TEST(JsonLogLineTest, CarriesTimeInUtcWithMillisecondsLevelAndMessage) {
  const auto j = Parse(FormatJsonLogLine(kTime, spdlog::level::warn, "disk almost full"));
  EXPECT_EQ(j["time"], "2026-11-30T00:57:44.123Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["message"], "disk almost full");
  EXPECT_FALSE(j.contains("request_id"));
}

TEST(JsonLogLineTest, RequestIdPrefixBecomesAField) {
  const auto j =
      Parse(FormatJsonLogLine(kTime, spdlog::level::info, "[9F2C61A0B7D4E3F1] access method=GET status=200"));
  EXPECT_EQ(j["request_id"], "9F2C61A0B7D4E3F1");
  EXPECT_EQ(j["message"], "access method=GET status=200");
}

TEST(JsonLogLineTest, BracketsThatAreNoRequestIdStayInTheMessage) {
  for (const char* message : {"[] nothing", "[short] x", "[has space] x", "[9F2C61A0B7D4E3F1", "9F2C61A0B7D4E3F1] x"}) {
    const auto j = Parse(FormatJsonLogLine(kTime, spdlog::level::info, message));
    EXPECT_FALSE(j.contains("request_id")) << message;
    EXPECT_EQ(j["message"], message);
  }
}

TEST(JsonLogLineTest, LevelsUseTheConfigNames) {
  EXPECT_EQ(Parse(FormatJsonLogLine(kTime, spdlog::level::err, "x"))["level"], "error");
  EXPECT_EQ(Parse(FormatJsonLogLine(kTime, spdlog::level::critical, "x"))["level"], "critical");
  EXPECT_EQ(Parse(FormatJsonLogLine(kTime, spdlog::level::trace, "x"))["level"], "trace");
  EXPECT_EQ(Parse(FormatJsonLogLine(kTime, spdlog::level::debug, "x"))["level"], "debug");
}

TEST(JsonLogLineTest, MessageWithNewlineQuoteOrControlCannotForgeALine) {
  const std::string evil = "key=\"a\nb\"\r\t\\ \x01\x7f {\"level\":\"error\"}";
  const std::string line = FormatJsonLogLine(kTime, spdlog::level::info, evil);
  const auto j = Parse(line);
  EXPECT_EQ(j["message"], evil);
  EXPECT_EQ(j["level"], "info");
}

TEST(JsonLogLineTest, InvalidUtf8BecomesReplacementCharacters) {
  const std::string bytes = "caf\xc3\xa9 \xff\xfe overlong \xc0\xaf surrogate \xed\xa0\x80 cut \xe2\x82";
  const auto j = Parse(FormatJsonLogLine(kTime, spdlog::level::info, bytes));
  const std::string message = j["message"];
  EXPECT_EQ(message.rfind("caf\xc3\xa9 ", 0), 0u);  // valid UTF-8 kept as is
  EXPECT_EQ(message.find('\xff'), std::string::npos);
  EXPECT_NE(message.find("\xef\xbf\xbd"), std::string::npos);
}

TEST(JsonLogFormatterTest, InstalledOnALoggerEachLineParses) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("json-test", sink);
  logger.set_formatter(MakeLogFormatter("json"));
  logger.info("[ABCDEF0123456789] {} {}", "GetObject", 404);
  logger.error("plain {}", "line");
  std::istringstream lines(out.str());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("time"));
    ++n;
    if (n == 1) {
      EXPECT_EQ(j["request_id"], "ABCDEF0123456789");
      EXPECT_EQ(j["message"], "GetObject 404");
    } else {
      EXPECT_EQ(j["level"], "error");
      EXPECT_EQ(j["message"], "plain line");
    }
  }
  EXPECT_EQ(n, 2);
}

TEST(JsonLogFormatterTest, TextFormatIsSpdlogsLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("text-test", sink);
  logger.set_formatter(MakeLogFormatter("text"));
  logger.info("[ABCDEF0123456789] hello");
  EXPECT_NE(out.str().find("[text-test] [info] [ABCDEF0123456789] hello"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace coffre::ops
