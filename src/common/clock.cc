#include "coffre/common/clock.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace coffre {
namespace {

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override { return std::chrono::system_clock::now(); }
};

std::tm ToTm(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}

std::optional<std::chrono::system_clock::time_point> FromTm(std::tm tm) {
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  std::time_t tt = timegm(&tm);
  if (tt == static_cast<std::time_t>(-1)) {
    return std::nullopt;
  }
  // system_clock counts nanoseconds in 64 bits: it ends in 2262. A later date (the fuzzer sent
  // x-amz-date 28130524T000000Z) would overflow in from_time_t, which is undefined behaviour.
  constexpr auto kLastSecond =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::time_point::max().time_since_epoch());
  if (tt > kLastSecond.count()) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(tt);
}

std::optional<std::chrono::system_clock::time_point> ParseWith(std::string_view s, const char* fmt) {
  std::string buf(s);
  std::tm tm{};
  const char* end = strptime(buf.c_str(), fmt, &tm);
  if (end == nullptr || *end != '\0') {
    return std::nullopt;
  }
  return FromTm(tm);
}

}  // namespace

const Clock& Clock::System() {
  static const SystemClock clock;
  return clock;
}

UnixMillis ToUnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point FromUnixMillis(UnixMillis ms) {
  // Saturates at the ends of system_clock's range (years 1677 and 2262): converting a larger
  // count of milliseconds to its nanoseconds would overflow (undefined behaviour; ASan+UBSan found
  // it with an "all time" export bound of INT64_MAX / 2).
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  constexpr UnixMillis kMax =
      std::chrono::duration_cast<milliseconds>(system_clock::time_point::max().time_since_epoch()).count();
  constexpr UnixMillis kMin =
      std::chrono::duration_cast<milliseconds>(system_clock::time_point::min().time_since_epoch()).count();
  return system_clock::time_point(milliseconds(std::clamp(ms, kMin, kMax)));
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') {
    return std::nullopt;
  }
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && (s[i] < '0' || s[i] > '9')) {
      return std::nullopt;
    }
  }
  return ParseWith(s, "%Y%m%dT%H%M%SZ");
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  std::tm tm = ToTm(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string FormatIso8601(std::chrono::system_clock::time_point t) {
  std::tm tm = ToTm(t);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  auto ms = ToUnixMillis(t) % 1000;
  if (ms < 0) {
    ms += 1000;
  }
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

std::string FormatHttpDate(std::chrono::system_clock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm = ToTm(t);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view s) {
  // strptime's %a/%b are locale-dependent; the daemon runs in the C locale.
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y",
                          "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.000Z"}) {
    if (auto t = ParseWith(s, fmt)) {
      return t;
    }
  }
  return std::nullopt;
}

std::optional<UnixMillis> ParseUtcTime(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  const std::string str(text);
  int consumed = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10) {
    return std::nullopt;
  }
  std::string_view rest = std::string_view(str).substr(10);
  if (!rest.empty()) {
    int n = 0;
    if (std::sscanf(rest.data(), "T%2d:%2d:%2d%n", &h, &mi, &s, &n) != 3 || n != 9) {
      return std::nullopt;
    }
    rest.remove_prefix(9);
    if (rest.starts_with('.')) {
      if (rest.size() < 4 || std::sscanf(rest.data(), ".%3d%n", &ms, &n) != 1 || n != 4) {
        return std::nullopt;
      }
      rest.remove_prefix(4);
    }
    if (rest != "Z") {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60 || y < 1970 ||
      ms < 0) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const time_t t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1)) {
    return std::nullopt;
  }
  return static_cast<UnixMillis>(t) * 1000 + ms;
}

std::optional<UnixMillis> ParseIso8601(std::string_view text) {
  // The seconds' part as ParseUtcTime reads it, then the fraction and the offset here.
  if (text.size() < 20 || text[10] != 'T') return std::nullopt;
  auto whole = ParseUtcTime(std::string(text.substr(0, 19)) + "Z");
  if (!whole) return std::nullopt;
  std::string_view rest = text.substr(19);
  int64_t ms = 0;
  if (rest.starts_with('.')) {
    size_t digits = 1;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits == 1) return std::nullopt;
    for (size_t i = 1; i < 4; ++i) ms = ms * 10 + (i < digits ? rest[i] - '0' : 0);
    rest.remove_prefix(digits);
  }
  int64_t offset_minutes = 0;
  if (rest != "Z") {
    if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':') return std::nullopt;
    auto two = [&](size_t at) -> int {
      const char tens = rest[at], ones = rest[at + 1];
      return tens >= '0' && tens <= '9' && ones >= '0' && ones <= '9' ? (tens - '0') * 10 + (ones - '0') : -1;
    };
    const int hours = two(1), minutes = two(4);
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return std::nullopt;
    offset_minutes = (rest[0] == '+' ? 1 : -1) * (hours * 60 + minutes);
  }
  return *whole + ms - offset_minutes * 60 * 1000;
}

}  // namespace coffre
