#pragma once

// Errors are values across module boundaries (docs/ARCHITECTURE.md). A Status is a
// broad category plus a human-readable message; it never carries key material.
// An OK status allocates nothing.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace coffre {

enum class StatusCode {
  kOk = 0,
  kNotFound,
  kAlreadyExists,
  kInvalidArgument,
  kFailedPrecondition,  // state forbids the operation (e.g. bucket not empty)
  kPermissionDenied,
  kCorruption,  // stored bytes failed an integrity check
  kIOError,
  kNoSpace,      // the disk is full
  kUnavailable,  // transient: retry later
  kAborted,      // conflict with a concurrent operation
  kOutOfRange,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {StatusCode::kAlreadyExists, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {StatusCode::kFailedPrecondition, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {StatusCode::kPermissionDenied, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status NoSpace(std::string msg) { return {StatusCode::kNoSpace, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status Aborted(std::string msg) { return {StatusCode::kAborted, std::move(msg)}; }
  static Status OutOfRange(std::string msg) { return {StatusCode::kOutOfRange, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
  // errno-based I/O error: ENOSPC/EDQUOT become kNoSpace.
  static Status FromErrno(int err, std::string_view context);

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  const std::string& message() const;
  std::string ToString() const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const State> state_;
};

// Expected<T, E>: a value or an error E. Result<T> is Expected<T, Status>; other
// modules use their own error type where callers must tell errors apart (s3, service).
template <typename T, typename E>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }
  const E& status() const& { return std::get<1>(v_); }  // only valid when !ok()
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, E> v_;
};

template <typename T>
using Result = Expected<T, Status>;

// The outcome of a Result without its value: Ok, or its error.
template <typename T>
Status StatusOf(const Result<T>& result) {
  return result.ok() ? Status::Ok() : result.status();
}

}  // namespace coffre

// Early-return helpers for functions that return Status or Result<T>.
#define COFFRE_CONCAT_INNER(a, b) a##b
#define COFFRE_CONCAT(a, b) COFFRE_CONCAT_INNER(a, b)

#define COFFRE_RETURN_IF_ERROR(expr)         \
  do {                                       \
    ::coffre::Status _coffre_st = (expr);    \
    if (!_coffre_st.ok()) return _coffre_st; \
  } while (0)

#define COFFRE_ASSIGN_OR_RETURN(lhs, expr) COFFRE_ASSIGN_OR_RETURN_IMPL(COFFRE_CONCAT(_coffre_r, __LINE__), lhs, expr)
#define COFFRE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
