// coffre catalog rebuild: a lost catalog.db made again from the blob store and the keystore.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/service/catalog_rebuild.h"
#include "commands.h"
#include "data_dir_lock.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct RebuildFlags {
  CommonFlags common;
  bool json = false;
};

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + dir);
  const int synced = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return synced == 0 ? Status::Ok() : Status::FromErrno(err, "fsync " + dir);
}

void RemoveDatabase(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path + suffix, ec);
}

Result<service::RebuildReport> Rebuild(const RebuildFlags& flags) {
  COFFRE_ASSIGN_OR_RETURN(Config config, ResolveConfig(flags.common));
  auto lock = DataDirLock::Acquire(config.data_dir);
  if (!lock.ok()) {
    if (lock.status().code() == StatusCode::kUnavailable) {
      return Status::Unavailable("catalog rebuild refused: " + lock.status().message() + "; stop the daemon first");
    }
    return lock.status();
  }
  const std::string path = config.data_dir + "/catalog.db";
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    if (std::filesystem::exists(path + suffix, ec)) {
      return Status::FailedPrecondition(path + suffix +
                                        " exists: a rebuild never replaces a catalog; move catalog.db and its "
                                        "-wal and -shm files aside first");
    }
  }
  COFFRE_ASSIGN_OR_RETURN(CliContext context, OpenForCli(config));
  COFFRE_RETURN_IF_ERROR(context.OpenAuditLogOrRefuse());
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<storage::BlobStore> blobs, OpenBlobStore(config));

  // Built beside, installed by a rename once complete: a rebuild cut short leaves no catalog
  // that a daemon would take for the whole truth.
  const std::string building = path + ".rebuilding";
  RemoveDatabase(building);
  Result<service::RebuildReport> report = Status::Internal("not run");
  {
    COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<catalog::Catalog> fresh, catalog::Catalog::Open(building));
    report = service::RebuildCatalog(context.keys(), *blobs, *fresh, path + ".rebuild-scratch", context.audit_log.get(),
                                     CliRequest("cli:catalog rebuild"));
  }
  if (!report.ok()) {
    RemoveDatabase(building);
    return report.status();
  }
  // Closing the catalog folds its write-ahead log into the file; renaming the file alone must not
  // leave committed rows behind in a log that would no longer match its name.
  std::error_code ec;
  if (std::filesystem::exists(building + "-wal", ec)) {
    return Status::Internal(building + "-wal remains after closing the rebuilt catalog; it was not installed");
  }
  if (::rename(building.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + building);
  COFFRE_RETURN_IF_ERROR(SyncDirectory(config.data_dir));
  return report;
}

void Print(const service::RebuildReport& r, bool json) {
  if (json) {
    std::cout << nlohmann::json{{"blobs", r.blobs},
                                {"buckets", r.buckets},
                                {"objects", r.objects},
                                {"multipart_objects", r.multipart_objects},
                                {"delete_markers", r.delete_markers},
                                {"superseded", r.superseded},
                                {"object_updates", r.object_updates},
                                {"versioned_buckets", r.versioned_buckets},
                                {"locked_buckets", r.locked_buckets},
                                {"unfinished_parts", r.unfinished_parts},
                                {"unreadable", r.unreadable},
                                {"incomplete", r.incomplete},
                                {"strays", r.strays},
                                {"key_copy_blobs", r.key_copy_blobs},
                                {"opened_by_key_copy", r.opened_by_key_copy},
                                {"without_key", r.without_key}}
                     .dump()
              << std::endl;
    return;
  }
  std::cout << "blobs: " << r.blobs << "; rebuilt " << r.buckets << " buckets and " << r.objects << " objects ("
            << r.multipart_objects << " multipart; tags changed later on " << r.object_updates << ") and "
            << r.delete_markers << " delete markers; superseded objects and tag updates: " << r.superseded
            << "; parts of uploads never completed: " << r.unfinished_parts << " (coffre fsck --repair removes both)\n"
            << "buckets given versioning again: " << r.versioned_buckets
            << ", of which with Object Lock: " << r.locked_buckets
            << " (their other settings are not in the blobs; set them again)\n"
            << "key-copies blobs: " << r.key_copy_blobs << "; blobs opened by a key copy (their own key version "
            << "destroyed): " << r.opened_by_key_copy << "\n";
  PrintList("blobs that could not be read (left in place)", r.unreadable);
  PrintList("objects left out", r.incomplete);
  PrintList(
      "blobs whose key version is gone and that no key copy names (no object named them when it was "
      "rewrapped, or a shredded tenant's; left for fsck)",
      r.without_key);
  PrintList("not blobs (ignored, left in place)", r.strays);
  std::cout << "catalog rebuilt" << std::endl;
}

}  // namespace

void RegisterCatalogCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<RebuildFlags>();
  auto* catalog = app.add_subcommand("catalog", "Catalog tools");
  catalog->require_subcommand(1);
  auto* rebuild = catalog->add_subcommand(
      "rebuild",
      "Make a lost catalog.db again from the blob store and the keystore (daemon stopped; refuses while a "
      "catalog.db exists). Exit 0 when every object came back, 3 when some blobs could not be read");
  AddCommonFlags(rebuild, flags->common);
  rebuild->add_flag("--json", flags->json, "Print the report as JSON");
  rebuild->callback([flags, &runner] {
    runner.run = [flags] {
      auto report = Rebuild(*flags);
      if (!report.ok()) return Fail(report.status());
      Print(*report, flags->json);
      return report->unreadable.empty() && report->incomplete.empty() ? 0 : kExitIncomplete;
    };
  });
}

}  // namespace coffre::server
