// coffre storage migrate: the data directory's blobs copied, unchanged and under the same ids, into
// the upstream bucket a configuration names, so that the daemon can then run in gateway mode over
// the same catalog.

#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "coffre/storage/blob_copy.h"
#include "commands.h"
#include "data_dir_lock.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct MigrateFlags {
  CommonFlags common;
  int jobs = 4;
  bool no_verify = false;
  bool json = false;
};

int Migrate(const MigrateFlags& flags) {
  auto config = ResolveConfig(flags.common);
  if (!config.ok()) return Fail(config.status());
  if (config->storage.backend != "s3") {
    return Fail(Status::InvalidArgument(
        "storage migrate copies the data directory's blobs to the upstream bucket that --config names: its "
        "'storage' must be {\"backend\": \"s3\", ...} (the configuration the daemon will run with afterwards)"));
  }
  // Beside a running daemon the copy is of what was committed when it began; with the daemon
  // stopped, the lock keeps one from starting in the middle.
  std::optional<DataDirLock> lock;
  if (auto acquired = DataDirLock::Acquire(config->data_dir); acquired.ok()) {
    lock.emplace(std::move(acquired).value());
  } else if (acquired.status().code() != StatusCode::kUnavailable) {
    return Fail(acquired.status());
  }
  storage::LocalBlobStoreOptions local_options;
  local_options.max_packed_blob = config->packed_blob_max_bytes;
  auto local = storage::OpenLocalBlobStore(config->data_dir, std::move(local_options));
  if (!local.ok()) return Fail(local.status());
  auto upstream = OpenBlobStore(*config);
  if (!upstream.ok()) return Fail(upstream.status());

  storage::BlobCopyOptions options;
  options.jobs = flags.jobs;
  options.verify = !flags.no_verify;
  if (!flags.json) {
    options.progress = [last = uint64_t{0}](const storage::BlobCopyReport& r) mutable {
      const uint64_t done = r.copied + r.gone + r.failed.size();
      if (done >= last + 1000) {
        last = done;
        std::cerr << "  " << r.copied << " copied (" << r.bytes_copied / (1024 * 1024) << " MiB), " << r.failed.size()
                  << " failed" << std::endl;
      }
    };
  }
  auto report = storage::CopyBlobs(**local, **upstream, options);
  if (!report.ok()) return Fail(report.status());
  const storage::BlobCopyReport& r = *report;
  const bool complete = r.failed.empty();
  if (flags.json) {
    std::cout << nlohmann::json{{"daemon_running", !lock.has_value()},
                                {"listed", r.listed},
                                {"copied", r.copied},
                                {"bytes_copied", r.bytes_copied},
                                {"already_there", r.already_there},
                                {"gone", r.gone},
                                {"verified", options.verify},
                                {"failed", r.failed}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "blobs in " << config->data_dir << ": " << r.listed << "; copied " << r.copied << " ("
              << r.bytes_copied << " bytes" << (options.verify ? ", each read back and compared" : "") << "), "
              << r.already_there << " already upstream, " << r.gone << " deleted meanwhile\n";
    if (!complete) {
      PrintList("not copied", r.failed);
      std::cout << "run it again: what is upstream already is skipped" << std::endl;
    } else if (!lock) {
      std::cout << "the daemon is running: what it writes from now on is not copied. Stop it, run this again "
                   "(it copies only the rest), then start it with this configuration"
                << std::endl;
    } else {
      std::cout << "every blob is upstream: start the daemon with this configuration" << std::endl;
    }
  }
  return complete ? 0 : kExitIncomplete;
}

}  // namespace

void RegisterStorageCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<MigrateFlags>();
  auto* storage = app.add_subcommand("storage", "Blob storage tools");
  storage->require_subcommand(1);
  auto* migrate = storage->add_subcommand(
      "migrate",
      "Copy the data directory's blobs to the upstream bucket --config names (resumable; the daemon may run). "
      "Exit 0 when every blob is upstream, 3 when some could not be copied");
  AddCommonFlags(migrate, flags->common);
  migrate->add_option("--jobs", flags->jobs, "Blobs copied at the same time (1 to 64, default 4)")
      ->check(CLI::Range(1, 64));
  migrate->add_flag("--no-verify", flags->no_verify, "Do not read each copy back to compare it with the source");
  migrate->add_flag("--json", flags->json, "Print the report as JSON");
  migrate->callback([flags, &runner] { runner.run = [flags] { return Migrate(*flags); }; });
}

}  // namespace coffre::server
