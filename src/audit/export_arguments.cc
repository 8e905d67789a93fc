#include "coffre/audit/export_arguments.h"

#include <string>
#include <utility>

namespace coffre::audit {

Result<BundleFormat> ParseBundleFormat(std::string_view text, const ExportArgumentNames& names) {
  if (text == "jsonl") {
    return BundleFormat::kJsonl;
  }
  if (text == "csv") {
    return BundleFormat::kCsv;
  }
  return Status::InvalidArgument(std::string(names.format) + " must be jsonl or csv");
}

Result<UnixMillis> ParseTimeArgument(std::string_view name, std::string_view text, bool quote_rejected_time) {
  if (auto t = ParseUtcTime(text)) {
    return *t;
  }
  std::string message = std::string(name) + ": expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z";
  if (quote_rejected_time) {
    message += ", got '" + std::string(text) + "'";
  }
  return Status::InvalidArgument(std::move(message));
}

Result<ExportTimeRange> ParseExportTimeRange(std::string_view from, std::string_view to, UnixMillis now,
                                             const ExportArgumentNames& names) {
  ExportTimeRange range;
  range.to_ms = now;
  if (!from.empty()) {
    COFFRE_ASSIGN_OR_RETURN(range.from_ms, ParseTimeArgument(names.from, from, names.quote_rejected_time));
  }
  if (!to.empty()) {
    COFFRE_ASSIGN_OR_RETURN(range.to_ms, ParseTimeArgument(names.to, to, names.quote_rejected_time));
  }
  if (range.from_ms > range.to_ms) {
    return Status::InvalidArgument("the time range is reversed: " + std::string(names.from) + " is after " +
                                   std::string(names.to));
  }
  return range;
}

}  // namespace coffre::audit
