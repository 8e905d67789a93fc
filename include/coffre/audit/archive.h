#pragma once

// Retention (docs/AUDIT.md, "Archive and pruning"): an archive holds every record of every tenant
// from the previous archive boundary up to a signed global checkpoint, with the global chain, so
// that it verifies on its own and the chain stays verifiable from the boundary after the archived
// records are pruned from the live log.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/audit/record.h"
#include "coffre/audit/verify.h"

namespace coffre::audit {

struct ArchivedRecord {
  uint64_t gseq = 0;
  Record record;
  Hash global_hash{};  // G(gseq)
};

struct ChainPosition {
  uint64_t seq = 0;
  Hash hash{};
};

struct Archive {
  UnixMillis before_ms = 0;
  // The state the first archived record follows: the global chain position and each tenant's last
  // record before it (from the previous archive; zeros for the log's start).
  ChainPosition start_global;
  std::map<std::string, ChainPosition> start_tenants;
  uint64_t end_gseq = 0;  // a signed global checkpoint sits here
  std::vector<ArchivedRecord> records;
  std::vector<Checkpoint> checkpoints;  // global and tenant checkpoints over the archived records
  Bytes public_key;
  std::vector<size_t> record_lines;  // parsed archives: the line of each record, for messages
};

std::string EncodeArchive(const Archive& archive);
// True when the text starts like an archive (for `coffre audit verify` to dispatch).
bool LooksLikeArchive(std::string_view text);
Result<Archive> ParseArchive(std::string_view text);
// Checks every tenant chain link, the global chain, and that the end is signed. failed_seq in the
// report is the record's global seq; failed_line its line in the file.
Result<VerifyReport> VerifyArchive(const Archive& archive, ByteView public_key);

}  // namespace coffre::audit
