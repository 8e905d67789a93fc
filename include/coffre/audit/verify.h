#pragma once

// The outcome of verifying an export bundle or an archive offline.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coffre/common/clock.h"

namespace coffre::audit {

enum class Breakage {
  kNone,
  kAltered,       // a record's content does not match the chain or a signed head
  kMissing,       // a record is missing (a sequence gap, or the end was cut)
  kReordered,     // records are out of order
  kUnsignedTail,  // records after the last valid checkpoint
  kForeign,       // a record or checkpoint of another tenant
  kBadSignature,  // a checkpoint whose signature does not verify (forged or altered)
};

std::string_view BreakageName(Breakage b);

struct VerifyReport {
  Breakage breakage = Breakage::kNone;
  uint64_t records = 0;     // records verified (all of them when ok)
  UnixMillis first_ms = 0;  // time span covered
  UnixMillis last_ms = 0;
  uint64_t failed_seq = 0;  // the first record that breaks (0 for a checkpoint problem)
  size_t failed_line = 0;   // its line in the file (1-based; 0 if none)
  std::string message;      // human-readable: which record and why

  bool ok() const { return breakage == Breakage::kNone; }
};

}  // namespace coffre::audit
