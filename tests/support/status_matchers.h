#pragma once

// gtest helpers for errors as values: a failed check prints the error's code and message instead
// of "Value of: x.ok() Actual: false".
//
//   ASSERT_OK(store->Put(blob));                  // a Status, Result<T> or any Expected<T, E>
//   EXPECT_THAT(cat->GetBucket("b"), StatusIs(StatusCode::kNotFound));
//   EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument, HasSubstr("tls_cert_file")));
//   EXPECT_THAT(parsed, Not(IsOk()));
//
// They work with anything that has ok(): Status and Result<T>, Expected<T, E> whose E is
// service::Error or s3::Error, and reports such as audit::VerifyReport. StatusIs takes that type's
// own code (StatusCode, service::Errc, s3::ErrorCode).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "coffre/common/status.h"

namespace coffre {

// How gtest prints these values in a failure ("Actual: ..."). Found by argument-dependent lookup.
inline void PrintTo(const Status& status, std::ostream* os) { *os << status.ToString(); }

namespace test_support {

template <typename V>
struct IsExpected : std::false_type {};
template <typename T, typename E>
struct IsExpected<Expected<T, E>> : std::true_type {};

// The error's code: Status::code(), or the `code` member of service::Error and s3::Error.
template <typename V>
auto ErrorCodeOf(const V& v) {
  if constexpr (IsExpected<V>::value) {
    return ErrorCodeOf(v.error());
  } else if constexpr (requires { v.code(); }) {
    return v.code();
  } else {
    return v.code;
  }
}

// The error's message, as the type words it.
template <typename V>
std::string ErrorMessageOf(const V& v) {
  if constexpr (IsExpected<V>::value) {
    return ErrorMessageOf(v.error());
  } else if constexpr (requires { v.effective_message(); }) {
    return std::string(v.effective_message());
  } else if constexpr (requires { v.message(); }) {
    return v.message();
  } else {
    return v.message;
  }
}

// One line naming the error, for failure output.
template <typename V>
std::string DescribeError(const V& v) {
  if constexpr (IsExpected<V>::value) {
    return v.ok() ? std::string("OK (a value)") : DescribeError(v.error());
  } else if constexpr (requires { v.ToString(); }) {
    return v.ToString();
  } else if constexpr (requires { v.code_name(); }) {
    return std::string(v.code_name()) + ": " + ErrorMessageOf(v);
  } else if constexpr (requires { v.ok(); }) {
    return v.ok() ? std::string("OK") : "not OK: " + ErrorMessageOf(v);
  } else {
    std::ostringstream os;
    os << "code " << static_cast<int>(ErrorCodeOf(v)) << ": " << ErrorMessageOf(v);
    return os.str();
  }
}

template <typename Code>
std::string DescribeCode(Code code) {
  if constexpr (std::is_same_v<Code, StatusCode>) {
    return std::string(StatusCodeName(code));
  } else {
    return "code " + std::to_string(static_cast<int>(code));
  }
}

// Status and Expected print themselves (PrintTo below); other types are explained in words.
template <typename V>
void ExplainUnprintable(const V& value, ::testing::MatchResultListener* listener) {
  if constexpr (!IsExpected<V>::value && !std::is_same_v<V, Status>) {
    *listener << "which is " << DescribeError(value);
  }
}

// The predicate-formatter behind ASSERT_OK / EXPECT_OK.
template <typename V>
::testing::AssertionResult AssertOk(const char* expression, const V& value) {
  if (value.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expression << " is not OK: " << DescribeError(value);
}

class IsOkMatcher {
 public:
  template <typename V>
  bool MatchAndExplain(const V& value, ::testing::MatchResultListener* listener) const {
    if (!value.ok()) ExplainUnprintable(value, listener);
    return value.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is an error"; }
};

// Matches an error (never an OK value) whose code is `code` and whose message matches `message`.
template <typename Code>
class StatusIsMatcher {
 public:
  StatusIsMatcher(Code code, std::optional<::testing::Matcher<const std::string&>> message)
      : code_(code), message_(std::move(message)) {}

  template <typename V>
  bool MatchAndExplain(const V& value, ::testing::MatchResultListener* listener) const {
    if (value.ok()) return false;
    ExplainUnprintable(value, listener);
    return ErrorCodeOf(value) == code_ && (!message_ || message_->Matches(ErrorMessageOf(value)));
  }
  void DescribeTo(std::ostream* os) const {
    *os << "is an error with code " << DescribeCode(code_);
    DescribeMessage(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "is not an error with code " << DescribeCode(code_);
    DescribeMessage(os);
  }

 private:
  void DescribeMessage(std::ostream* os) const {
    if (!message_) return;
    *os << " and a message that ";
    message_->DescribeTo(os);
  }

  Code code_;
  std::optional<::testing::Matcher<const std::string&>> message_;
};

inline ::testing::PolymorphicMatcher<IsOkMatcher> IsOk() { return ::testing::MakePolymorphicMatcher(IsOkMatcher()); }

template <typename Code>
::testing::PolymorphicMatcher<StatusIsMatcher<Code>> StatusIs(Code code) {
  return ::testing::MakePolymorphicMatcher(StatusIsMatcher<Code>(code, std::nullopt));
}
template <typename Code, typename MessageMatcher>
::testing::PolymorphicMatcher<StatusIsMatcher<Code>> StatusIs(Code code, MessageMatcher message) {
  return ::testing::MakePolymorphicMatcher(
      StatusIsMatcher<Code>(code, ::testing::SafeMatcherCast<const std::string&>(message)));
}

}  // namespace test_support

// How gtest prints an Expected: its error, or just "OK" (the value may not be printable).
template <typename T, typename E>
void PrintTo(const Expected<T, E>& value, std::ostream* os) {
  *os << test_support::DescribeError(value);
}

}  // namespace coffre

#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::coffre::test_support::AssertOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::coffre::test_support::AssertOk, expr)
