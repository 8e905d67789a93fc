#pragma once

// The daemon's log line formats (config "log_format"): "text", spdlog's usual line, which
// journald timestamps and shows as is; or "json", one JSON object per line for log shippers:
//
//   {"time":"2026-11-29T00:57:44.123Z","level":"info","message":"access method=GET
//   ...","request_id":"9F2C61A0B7D4E3F1"}
//
// `time` is UTC with milliseconds; `level` is trace, debug, info, warn, error or critical;
// `request_id` is present when the line is about an S3 request, i.e. when the message starts
// with "[REQUESTID] " (the convention every request line follows; the prefix moves into the
// field). Non-UTF-8 bytes become U+FFFD, so every line parses.

#include <spdlog/formatter.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace coffre::ops {

// The JSON line (with its trailing newline) for one message.
std::string FormatJsonLogLine(std::chrono::system_clock::time_point time, spdlog::level::level_enum level,
                              std::string_view message);

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// "text" or "json" (validated by the config); anything else is "text".
std::unique_ptr<spdlog::formatter> MakeLogFormatter(std::string_view format);

}  // namespace coffre::ops
