#pragma once

// The arguments of a tenant export (format, --from/--to times), parsed the same way for the admin
// API (GET /audit/export?format=&from=&to=) and the CLI (coffre audit export --format --from --to).
// Each caller names its own arguments, so that an error message names what the user typed.

#include <string_view>

#include "coffre/audit/bundle.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::audit {

struct ExportArgumentNames {
  std::string_view format;  // "format" or "--format"
  std::string_view from;
  std::string_view to;
  // Whether a rejected time is repeated in the error (the CLI's messages do; the API's do not).
  bool quote_rejected_time = false;
};

// "jsonl" or "csv"; InvalidArgument "<format> must be jsonl or csv" otherwise.
Result<BundleFormat> ParseBundleFormat(std::string_view text, const ExportArgumentNames& names);

// A UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z; InvalidArgument naming `name` otherwise.
Result<UnixMillis> ParseTimeArgument(std::string_view name, std::string_view text, bool quote_rejected_time);

struct ExportTimeRange {
  UnixMillis from_ms = 0;
  UnixMillis to_ms = 0;
};

// From `from` (default: the beginning) to `to` inclusive (default: `now`); an empty text takes the
// default. InvalidArgument for a malformed time or a reversed range.
Result<ExportTimeRange> ParseExportTimeRange(std::string_view from, std::string_view to, UnixMillis now,
                                             const ExportArgumentNames& names);

}  // namespace coffre::audit
