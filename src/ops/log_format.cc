#include "coffre/ops/log_format.h"

#include <spdlog/pattern_formatter.h>

#include <cstdint>

#include "coffre/common/clock.h"

namespace coffre::ops {
namespace {

// Request ids are 16 upper-case hex characters today; accept any short alphanumeric token so
// that a longer id format keeps working, and nothing that could be ordinary text.
size_t RequestIdPrefix(std::string_view message) {
  if (message.size() < 3 || message[0] != '[') {
    return 0;
  }
  size_t end = 1;
  while (end < message.size() && end <= 65) {
    const char c = message[end];
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!alnum) {
      break;
    }
    ++end;
  }
  if (end < 9 || end >= message.size() || message[end] != ']') {
    return 0;
  }
  return end;  // position of ']'
}

// Length of the valid UTF-8 sequence at `s[i]`, or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b = byte(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
    cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    cp = b & 0x0F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    cp = b & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and values beyond U+10FFFF are not UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (const size_t n = Utf8SequenceLength(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "info";
  }
}

}  // namespace

std::string FormatJsonLogLine(std::chrono::system_clock::time_point time, spdlog::level::level_enum level,
                              std::string_view message) {
  std::string out;
  out.reserve(message.size() + 96);
  out += "{\"time\":\"";
  out += FormatIso8601(time);
  out += "\",\"level\":\"";
  out += LevelName(level);
  out += "\",\"message\":";
  const size_t close = RequestIdPrefix(message);
  std::string_view request_id;
  if (close > 0) {
    request_id = message.substr(1, close - 1);
    message.remove_prefix(close + 1);
    if (!message.empty() && message.front() == ' ') {
      message.remove_prefix(1);
    }
  }
  AppendJsonString(out, message);
  if (!request_id.empty()) {
    out += ",\"request_id\":";
    AppendJsonString(out, request_id);
  }
  out += "}\n";
  return out;
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const std::string line =
      FormatJsonLogLine(std::chrono::time_point_cast<std::chrono::system_clock::duration>(msg.time), msg.level,
                        std::string_view(msg.payload.data(), msg.payload.size()));
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const { return std::make_unique<JsonLogFormatter>(); }

std::unique_ptr<spdlog::formatter> MakeLogFormatter(std::string_view format) {
  if (format == "json") {
    return std::make_unique<JsonLogFormatter>();
  }
  return std::make_unique<spdlog::pattern_formatter>();
}

}  // namespace coffre::ops
