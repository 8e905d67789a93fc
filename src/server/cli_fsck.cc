// coffre fsck [--repair] [--min-age SECONDS] [--json]
//
// Checks that the catalog and the blob area agree (docs/RELIABILITY.md):
//   missing     a blob that an object or an upload part names is not on disk (data loss: reported,
//               never repaired: only a backup brings it back)
//   orphans     a blob (file or pack record) that no catalog row names (a crash between the blob's
//               commit and its catalog row): removed by --repair
//   temporaries a writer's temporary file (a crash mid-write): removed by --repair
//   doomed      a blob that the catalog still references and also lists as garbage (the collector
//               would delete live data): --repair takes it off the garbage list
//   strays      files in the blob area that are not blobs: reported, never touched; and bytes in a
//               pack where a record should start but none does (a write torn by a power cut, never
//               acknowledged): punched out by --repair, unless a blob is missing (they might be
//               its bytes under a damaged header, the only copy left to recover by hand)
// Garbage rows whose files are already gone are normal (the collector forgets them next).
//
// Files younger than --min-age may belong to a write in flight on a running daemon: they are
// counted as recent and neither reported nor removed. Run with the daemon stopped and
// --min-age 0 for an exact check (e.g. right after a crash, before the restart).
// --repair refuses to run while a daemon holds the data directory's lock (data_dir_lock.h).
//
// Exit status: 0 clean (after repair, if asked), 3 inconsistencies remain, 1/2 as every command.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli_context.h"
#include "coffre/catalog/catalog.h"
#include "coffre/storage/blob_store.h"
#include "commands.h"
#include "data_dir_lock.h"
#include "stores.h"

namespace coffre::server {
namespace {

constexpr uint32_t kPage = 10000;
constexpr int kExitInconsistent = 3;

Result<std::vector<std::string>> AllBlobIds(catalog::Catalog& catalog, catalog::BlobRefSource source) {
  std::vector<std::string> out;
  std::string after;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(auto page, catalog.ListBlobIds(source, after, kPage));
    if (page.empty()) {
      break;
    }
    after = page.back();
    out.insert(out.end(), std::make_move_iterator(page.begin()), std::make_move_iterator(page.end()));
    if (page.size() < kPage) {
      break;
    }
  }
  return out;
}

bool Contains(const std::vector<std::string>& sorted, const std::string& id) {
  return std::binary_search(sorted.begin(), sorted.end(), id);
}

struct Report {
  uint64_t blobs = 0;            // blob files on disk
  uint64_t referenced = 0;       // distinct blob ids objects and upload parts name
  uint64_t garbage_pending = 0;  // blob files listed as garbage (the collector removes them)
  uint64_t recent = 0;           // unreferenced blobs and temporaries younger than --min-age
  std::vector<std::string> missing;
  std::vector<std::string> orphans;
  std::vector<std::string> temporaries;
  std::vector<std::string> doomed;
  std::vector<std::string> strays;          // left where they are
  std::vector<std::string> strays_removed;  // pack bytes punched out by --repair
  uint64_t orphans_removed = 0;
  uint64_t temporaries_removed = 0;
  uint64_t doomed_rescued = 0;

  bool Clean(bool repaired) const {
    if (!missing.empty() || !strays.empty()) {
      return false;
    }
    if (!repaired) {
      return orphans.empty() && temporaries.empty() && doomed.empty();
    }
    return orphans_removed == orphans.size() && temporaries_removed == temporaries.size() &&
           doomed_rescued == doomed.size();
  }
};

Result<Report> Check(catalog::Catalog& catalog, storage::BlobStore& blobs, bool repair, int64_t min_age) {
  Report r;
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();

  // The catalog first, then the disk: a blob committed after the catalog walk is then a recent
  // unreferenced file (skipped by --min-age), never a false "missing".
  COFFRE_ASSIGN_OR_RETURN(auto live, AllBlobIds(catalog, catalog::BlobRefSource::kObjectParts));
  COFFRE_ASSIGN_OR_RETURN(auto parts, AllBlobIds(catalog, catalog::BlobRefSource::kUploadParts));
  live.insert(live.end(), parts.begin(), parts.end());
  COFFRE_ASSIGN_OR_RETURN(auto manifests, AllBlobIds(catalog, catalog::BlobRefSource::kManifests));
  live.insert(live.end(), manifests.begin(), manifests.end());
  COFFRE_ASSIGN_OR_RETURN(auto key_copies, AllBlobIds(catalog, catalog::BlobRefSource::kKeyCopies));
  live.insert(live.end(), key_copies.begin(), key_copies.end());
  COFFRE_ASSIGN_OR_RETURN(auto updates, AllBlobIds(catalog, catalog::BlobRefSource::kObjectUpdates));
  live.insert(live.end(), updates.begin(), updates.end());
  std::sort(live.begin(), live.end());
  live.erase(std::unique(live.begin(), live.end()), live.end());
  r.referenced = live.size();
  COFFRE_ASSIGN_OR_RETURN(auto garbage, AllBlobIds(catalog, catalog::BlobRefSource::kGarbage));

  COFFRE_ASSIGN_OR_RETURN(auto files, blobs.ListBlobs(&r.strays));
  r.blobs = files.size();
  std::vector<std::string> on_disk;
  on_disk.reserve(files.size());
  for (const auto& f : files) {
    on_disk.push_back(f.name);
    if (Contains(live, f.name)) {
      continue;
    }
    if (Contains(garbage, f.name)) {
      ++r.garbage_pending;
      continue;
    }
    if (now - f.modified_unix < min_age) {
      ++r.recent;
      continue;
    }
    // Re-check against the catalog as it is now: the walk above is not a snapshot.
    COFFRE_ASSIGN_OR_RETURN(bool referenced, catalog.IsBlobReferenced(f.name));
    if (referenced) {
      continue;
    }
    r.orphans.push_back(f.name);
    if (repair) {
      COFFRE_RETURN_IF_ERROR(blobs.Remove(f.name));
      ++r.orphans_removed;
    }
  }
  std::sort(on_disk.begin(), on_disk.end());

  for (const auto& id : live) {
    if (Contains(on_disk, id)) {
      if (Contains(garbage, id)) {
        COFFRE_ASSIGN_OR_RETURN(bool referenced, catalog.IsBlobReferenced(id));
        if (referenced) {
          r.doomed.push_back(id);
          if (repair) {
            COFFRE_RETURN_IF_ERROR(catalog.ForgetGarbage({id}));
            ++r.doomed_rescued;
          }
        }
      }
      continue;
    }
    // Gone from the disk, or from the catalog since the walk (deleted and collected meanwhile)?
    COFFRE_ASSIGN_OR_RETURN(bool referenced, catalog.IsBlobReferenced(id));
    if (!referenced) {
      continue;
    }
    auto reader = blobs.Open(id);
    if (reader.ok()) {
      continue;
    }
    if (reader.status().code() != StatusCode::kNotFound) {
      return reader.status();
    }
    r.missing.push_back(id);
  }

  if (repair && r.missing.empty()) {
    std::vector<std::string> left;
    for (auto& stray : r.strays) {
      Status removed = blobs.RemoveStray(stray);
      if (removed.ok()) {
        r.strays_removed.push_back(std::move(stray));
      } else if (removed.code() == StatusCode::kInvalidArgument) {  // a file: not Coffre's
        left.push_back(std::move(stray));
      } else {
        return removed;
      }
    }
    r.strays = std::move(left);
  }

  COFFRE_ASSIGN_OR_RETURN(auto temporaries, blobs.ListTemporaries());
  for (const auto& t : temporaries) {
    if (now - t.modified_unix < min_age) {
      ++r.recent;
      continue;
    }
    r.temporaries.push_back(t.name);
    if (repair) {
      COFFRE_RETURN_IF_ERROR(blobs.RemoveTemporary(t.name));
      ++r.temporaries_removed;
    }
  }
  return r;
}

}  // namespace

void RegisterFsckCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    bool repair = false;
    bool json = false;
    int64_t min_age = 900;
  };
  auto flags = std::make_shared<Flags>();
  auto* fsck = app.add_subcommand("fsck", "Check that the catalog and the blob files agree");
  AddCommonFlags(fsck, flags->common);
  fsck->add_flag("--repair", flags->repair, "Remove orphan blobs and temporaries; rescue live blobs listed as garbage");
  fsck->add_option("--min-age", flags->min_age, "Ignore unreferenced files younger than this many seconds")
      ->check(CLI::NonNegativeNumber);
  fsck->add_flag("--json", flags->json, "Print the report as JSON");
  fsck->callback([flags, &runner] {
    runner.run = [flags] {
      auto context = OpenForCli(flags->common, CliStores::kBlobs);
      if (!context.ok()) return Fail(context.status());
      // A repair removes files that a running daemon may be writing: it takes the data
      // directory's lock (held until the end), which a daemon holds while it runs.
      std::optional<DataDirLock> repair_lock;
      if (flags->repair) {
        auto lock = DataDirLock::Acquire(context->config.data_dir);
        if (!lock.ok()) {
          if (lock.status().code() == StatusCode::kUnavailable) {
            return Fail(Status::Unavailable("fsck --repair refused: " + lock.status().message() +
                                            "; stop the daemon first (fsck without --repair runs beside it)"));
          }
          return Fail(lock.status());
        }
        repair_lock.emplace(std::move(lock).value());
      }
      auto report = Check(*context->stores.catalog, *context->stores.blobs, flags->repair, flags->min_age);
      if (!report.ok()) return Fail(report.status());
      const Report& r = *report;
      const bool clean = r.Clean(flags->repair);
      if (flags->json) {
        std::cout << nlohmann::json{{"clean", clean},
                                    {"repaired", flags->repair},
                                    {"blobs", r.blobs},
                                    {"referenced", r.referenced},
                                    {"garbage_pending", r.garbage_pending},
                                    {"recent", r.recent},
                                    {"missing", r.missing},
                                    {"orphans", r.orphans},
                                    {"temporaries", r.temporaries},
                                    {"doomed", r.doomed},
                                    {"strays", r.strays},
                                    {"strays_removed", r.strays_removed},
                                    {"orphans_removed", r.orphans_removed},
                                    {"temporaries_removed", r.temporaries_removed},
                                    {"doomed_rescued", r.doomed_rescued}}
                         .dump()
                  << std::endl;
      } else {
        std::cout << "blob files: " << r.blobs << ", referenced blobs: " << r.referenced
                  << ", awaiting garbage collection: " << r.garbage_pending << ", recent (skipped): " << r.recent
                  << "\n";
        const char* removed = flags->repair ? " (removed)" : " (--repair removes them)";
        PrintList("MISSING blobs that the catalog references", r.missing, " (data loss: restore from backup)");
        PrintList("orphan blobs that nothing references", r.orphans, removed);
        PrintList("leftover temporaries", r.temporaries, removed);
        PrintList("LIVE blobs listed as garbage", r.doomed,
                  flags->repair ? " (taken off the garbage list)" : " (--repair takes them off)");
        PrintList("strays: files in the blob area that are not blobs (left alone), pack bytes that no record holds",
                  r.strays,
                  flags->repair ? (r.missing.empty() ? "" : " (pack bytes kept while a blob is missing)")
                                : " (--repair punches out the pack bytes)");
        PrintList("pack bytes that no record held", r.strays_removed, " (punched out)");
        std::cout << (clean ? "fsck: clean" : "fsck: INCONSISTENT") << std::endl;
      }
      return clean ? 0 : kExitInconsistent;
    };
  });
}

}  // namespace coffre::server
