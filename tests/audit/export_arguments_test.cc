#include "coffre/audit/export_arguments.h"

#include <gtest/gtest.h>

#include "support/status_matchers.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

constexpr ExportArgumentNames kApi{"format", "from", "to", /*quote_rejected_time=*/false};
constexpr ExportArgumentNames kCli{"--format", "--from", "--to", /*quote_rejected_time=*/true};

TEST(ExportArguments, FormatIsJsonlOrCsv) {
  EXPECT_EQ(ParseBundleFormat("jsonl", kApi).value(), BundleFormat::kJsonl);
  EXPECT_EQ(ParseBundleFormat("csv", kCli).value(), BundleFormat::kCsv);

  const Status api = ParseBundleFormat("xml", kApi).status();
  EXPECT_THAT(api, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(api.message(), "format must be jsonl or csv");
  EXPECT_EQ(ParseBundleFormat("CSV", kCli).status().message(), "--format must be jsonl or csv");
  EXPECT_THAT(ParseBundleFormat("", kCli), Not(IsOk()));
}

TEST(ExportArguments, TimeRangeDefaultsToEverythingUntilNow) {
  const UnixMillis now = 1'800'000'000'000;
  const ExportTimeRange all = ParseExportTimeRange("", "", now, kApi).value();
  EXPECT_EQ(all.from_ms, 0);
  EXPECT_EQ(all.to_ms, now);

  const ExportTimeRange day = ParseExportTimeRange("2026-11-28", "2026-11-28T10:15:00Z", now, kCli).value();
  EXPECT_EQ(day.from_ms, ParseUtcTime("2026-11-28").value());
  EXPECT_EQ(day.to_ms, ParseUtcTime("2026-11-28T10:15:00Z").value());
}

TEST(ExportArguments, MalformedTimeNamesTheArgument) {
  const Status api = ParseExportTimeRange("yesterday", "", 0, kApi).status();
  EXPECT_THAT(api, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(api.message(), "from: expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z");

  const Status cli = ParseExportTimeRange("", "soon", 0, kCli).status();
  EXPECT_THAT(cli, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(cli.message(), "--to: expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z, got 'soon'");

  EXPECT_EQ(ParseTimeArgument("--before", "x", /*quote_rejected_time=*/true).status().message(),
            "--before: expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z, got 'x'");
}

TEST(ExportArguments, ReversedRangeIsRejected) {
  EXPECT_EQ(ParseExportTimeRange("2026-11-29", "2026-11-28", 0, kApi).status().message(),
            "the time range is reversed: from is after to");
  // `to` defaults to now, so a `from` in the future is reversed too.
  const Status cli = ParseExportTimeRange("2026-11-29", "", ParseUtcTime("2026-11-28").value(), kCli).status();
  EXPECT_THAT(cli, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(cli.message(), "the time range is reversed: --from is after --to");
  EXPECT_OK(ParseExportTimeRange("2026-11-28", "2026-11-28", 0, kApi));
}

}  // namespace
}  // namespace coffre::audit
