#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coffre {

// Injected wherever time decides behaviour (signature expiry, skew), so tests are hermetic.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
  static const Clock& System();
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(std::chrono::system_clock::time_point t) : t_(t) {}
  std::chrono::system_clock::time_point Now() const override { return t_; }
  void Set(std::chrono::system_clock::time_point t) { t_ = t; }

 private:
  std::chrono::system_clock::time_point t_;
};

using UnixMillis = int64_t;
UnixMillis ToUnixMillis(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point FromUnixMillis(UnixMillis ms);

// "20130524T000000Z" (ISO 8601 basic, as SigV4's X-Amz-Date).
std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view s);
std::string FormatAmzDate(std::chrono::system_clock::time_point t);
// "2013-05-24T00:00:00.000Z" (ISO 8601 extended with milliseconds, as S3 XML).
std::string FormatIso8601(std::chrono::system_clock::time_point t);
// "Fri, 24 May 2013 00:00:00 GMT" (RFC 7231 IMF-fixdate, as Last-Modified).
std::string FormatHttpDate(std::chrono::system_clock::time_point t);
// Accepts IMF-fixdate, RFC 850 and asctime forms, and ISO 8601 (some clients send it).
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view s);
// "2026-11-28", "2026-11-28T10:15:00Z" or "2026-11-28T10:15:00.250Z" (UTC), the time bounds an
// operator or auditor types (`coffre audit export/archive`, the admin API's audit export).
// nullopt for anything else.
std::optional<UnixMillis> ParseUtcTime(std::string_view text);
// An ISO 8601 date-time as S3 clients send timestamps (x-amz-object-lock-retain-until-date,
// RetainUntilDate): "2030-01-02T03:04:05Z", with any number of fraction digits (cut to
// milliseconds) and "Z" or a "+hh:mm"/"-hh:mm" offset. nullopt for anything else.
std::optional<UnixMillis> ParseIso8601(std::string_view text);

}  // namespace coffre
