#include "coffre/audit/archive.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "fields.h"

namespace coffre::audit {
namespace {

using nlohmann::json;

constexpr std::string_view kArchiveFormat = "coffre-audit-archive";

std::string Where(const ArchivedRecord& r, size_t line) {
  return "record " + std::to_string(r.gseq) + " (tenant '" + r.record.tenant + "' seq " + std::to_string(r.record.seq) +
         ", line " + std::to_string(line) + ")";
}

}  // namespace

std::string EncodeArchive(const Archive& a) {
  json tenants = json::object();
  for (const auto& [tenant, pos] : a.start_tenants) {
    tenants[tenant] = {{"seq", pos.seq}, {"hash", HashHex(pos.hash)}};
  }
  json header = {{"type", "archive"},
                 {"format", kArchiveFormat},
                 {"version", kFormatVersion},
                 {"before", FormatIso8601(FromUnixMillis(a.before_ms))},
                 {"before_ms", a.before_ms},
                 {"start_gseq", a.start_global.seq},
                 {"start_global_hash", HashHex(a.start_global.hash)},
                 {"start_tenants", tenants},
                 {"end_gseq", a.end_gseq},
                 {"public_key", EncodePublicKey(a.public_key)}};
  std::string out = header.dump() + "\n";
  for (const auto& r : a.records) {
    auto fields = internal::RecordFields(r.record);
    fields["type"] = "record";
    fields["gseq"] = std::to_string(r.gseq);
    fields["global_hash"] = HashHex(r.global_hash);
    out += internal::FieldsToJson(fields).dump() + "\n";
  }
  for (const auto& c : a.checkpoints) {
    out += internal::FieldsToJson(internal::CheckpointFields(c)).dump() + "\n";
  }
  return out;
}

bool LooksLikeArchive(std::string_view text) {
  const size_t nl = text.find('\n');
  json j = json::parse(text.substr(0, nl), nullptr, /*allow_exceptions=*/false);
  return !j.is_discarded() && j.is_object() && j.contains("format") && j["format"] == kArchiveFormat;
}

Result<Archive> ParseArchive(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return Status::InvalidArgument("the archive is empty or does not end with a complete line");
  }
  Archive a;
  size_t pos = 0;
  size_t line_no = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    json j = json::parse(text.substr(pos, nl - pos), nullptr, /*allow_exceptions=*/false);
    pos = nl + 1;
    ++line_no;
    if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
      return internal::Bad(line_no, "not a JSON object with a \"type\"");
    }
    internal::FieldGetter get = internal::JsonGetter(j);
    const std::string type = j["type"].get<std::string>();
    if (line_no == 1) {
      if (type != "archive" || get("format") != std::string(kArchiveFormat) ||
          get("version") != std::to_string(kFormatVersion)) {
        return Status::InvalidArgument("line 1: not a Coffre audit archive of a supported version");
      }
      auto before = get("before_ms");
      auto start = get("start_gseq");
      auto start_hash = get("start_global_hash");
      auto end = get("end_gseq");
      auto key = get("public_key");
      if (!before || !start || !start_hash || !end || !key || !internal::ParseI64(*before) ||
          !internal::ParseU64(*start) || !ParseHashHex(*start_hash) || !internal::ParseU64(*end) ||
          !j.contains("start_tenants") || !j["start_tenants"].is_object()) {
        return Status::InvalidArgument("line 1: malformed archive header");
      }
      a.before_ms = *internal::ParseI64(*before);
      a.start_global = ChainPosition{*internal::ParseU64(*start), *ParseHashHex(*start_hash)};
      a.end_gseq = *internal::ParseU64(*end);
      COFFRE_ASSIGN_OR_RETURN(a.public_key, DecodePublicKey(*key));
      for (const auto& [tenant, v] : j["start_tenants"].items()) {
        if (!v.is_object() || !v.contains("seq") || !v["seq"].is_number_unsigned() || !v.contains("hash") ||
            !v["hash"].is_string() || !ParseHashHex(v["hash"].get<std::string>())) {
          return Status::InvalidArgument("line 1: malformed start position of tenant '" + tenant + "'");
        }
        a.start_tenants[tenant] = ChainPosition{v["seq"].get<uint64_t>(), *ParseHashHex(v["hash"].get<std::string>())};
      }
    } else if (type == "record") {
      ArchivedRecord r;
      COFFRE_ASSIGN_OR_RETURN(r.record, internal::RecordFromFields(get, line_no));
      auto gseq = get("gseq");
      auto gh = get("global_hash");
      if (!gseq || !gh || !internal::ParseU64(*gseq) || !ParseHashHex(*gh)) {
        return internal::Bad(line_no, "record lacks a valid gseq or global_hash");
      }
      r.gseq = *internal::ParseU64(*gseq);
      r.global_hash = *ParseHashHex(*gh);
      a.records.push_back(std::move(r));
      a.record_lines.push_back(line_no);
    } else if (type == "checkpoint") {
      COFFRE_ASSIGN_OR_RETURN(Checkpoint c, internal::CheckpointFromFields(get, line_no, "head"));
      a.checkpoints.push_back(std::move(c));
    } else {
      return internal::Bad(line_no, "unknown line type '" + type + "'");
    }
  }
  return a;
}

Result<VerifyReport> VerifyArchive(const Archive& a, ByteView public_key) {
  COFFRE_RETURN_IF_ERROR(internal::CheckSignedWith("archive", a.public_key, public_key));
  VerifyReport rep;
  auto fail = [&](Breakage kind, size_t index, std::string message) {
    rep.breakage = kind;
    if (index < a.records.size()) {
      rep.failed_seq = a.records[index].gseq;
      rep.failed_line = index < a.record_lines.size() ? a.record_lines[index] : index + 2;
    }
    rep.message = std::move(message);
    return rep;
  };
  std::map<uint64_t, Hash> global_signed;
  std::map<std::pair<std::string, uint64_t>, Hash> tenant_signed;
  for (const auto& c : a.checkpoints) {
    if (!VerifyCheckpoint(public_key, c) || (c.scope != kScopeGlobal && c.scope != kScopeTenant)) {
      rep.breakage = Breakage::kBadSignature;
      rep.failed_seq = c.seq;
      rep.message = "the " + c.scope + " checkpoint at seq " + std::to_string(c.seq) +
                    " has an invalid signature (forged or altered checkpoint)";
      return rep;
    }
    if (c.scope == kScopeGlobal) {
      global_signed[c.seq] = c.head;
    } else {
      tenant_signed[{c.tenant, c.seq}] = c.head;
    }
  }
  // The checkpoint at the start (present in archives after the first) signs where it begins.
  if (auto start = global_signed.find(a.start_global.seq);
      a.start_global.seq > 0 && start != global_signed.end() && start->second != a.start_global.hash) {
    rep.breakage = Breakage::kAltered;
    rep.failed_seq = a.start_global.seq;
    rep.message = "the archive's start (global seq " + std::to_string(a.start_global.seq) +
                  ") does not match the signed checkpoint there: its header was altered";
    return rep;
  }
  for (size_t i = 1; i < a.records.size(); ++i) {
    if (a.records[i].gseq < a.records[i - 1].gseq) {
      size_t first = 0;  // the first record not where its gseq belongs
      std::vector<uint64_t> sorted;
      for (const auto& r : a.records) {
        sorted.push_back(r.gseq);
      }
      std::sort(sorted.begin(), sorted.end());
      while (first < a.records.size() && a.records[first].gseq == sorted[first]) {
        ++first;
      }
      return fail(Breakage::kReordered, first,
                  Where(a.records[first], first < a.record_lines.size() ? a.record_lines[first] : first + 2) +
                      " is out of order: record " + std::to_string(sorted[first]) + " belongs here");
    }
  }
  ChainPosition global = a.start_global;
  std::map<std::string, ChainPosition> tenants = a.start_tenants;
  for (size_t i = 0; i < a.records.size(); ++i) {
    const ArchivedRecord& r = a.records[i];
    const std::string where = Where(r, i < a.record_lines.size() ? a.record_lines[i] : i + 2);
    if (r.gseq <= global.seq) {
      return fail(Breakage::kReordered, i, where + " is out of order");
    }
    if (r.gseq != global.seq + 1) {
      return fail(Breakage::kMissing, i,
                  "records " + std::to_string(global.seq + 1) + ".." + std::to_string(r.gseq - 1) +
                      " are missing before " + where);
    }
    ChainPosition& t = tenants[r.record.tenant];
    if (r.record.seq != t.seq + 1) {
      return fail(Breakage::kMissing, i, where + " does not follow the tenant's record seq " + std::to_string(t.seq));
    }
    if (r.record.prev != t.hash) {
      return fail(Breakage::kAltered, i,
                  where + " does not link to the tenant's previous record (that record or this one was altered)");
    }
    const Hash h = RecordHash(r.record);
    const Hash g = GlobalLink(global.hash, r.gseq, h);
    if (g != r.global_hash) {
      return fail(Breakage::kAltered, i, where + " was altered: it does not match its global chain link");
    }
    if (auto it = tenant_signed.find({r.record.tenant, r.record.seq}); it != tenant_signed.end() && it->second != h) {
      return fail(Breakage::kAltered, i, where + " was altered: it does not match the tenant's signed checkpoint");
    }
    if (auto it = global_signed.find(r.gseq); it != global_signed.end() && it->second != g) {
      return fail(Breakage::kAltered, i, where + " was altered: it does not match the signed global checkpoint");
    }
    t = ChainPosition{r.record.seq, h};
    global = ChainPosition{r.gseq, g};
    if (rep.records == 0 || r.record.time_ms < rep.first_ms) {
      rep.first_ms = r.record.time_ms;
    }
    if (rep.records == 0 || r.record.time_ms > rep.last_ms) {
      rep.last_ms = r.record.time_ms;
    }
    ++rep.records;
  }
  if (global.seq != a.end_gseq) {
    rep.records = 0;
    fail(Breakage::kMissing, a.records.size(),
         "the archive should end at record " + std::to_string(a.end_gseq) + " but ends at " +
             std::to_string(global.seq) + ": records were removed from the end");
    rep.failed_seq = global.seq + 1;
    return rep;
  }
  auto end = global_signed.find(a.end_gseq);
  if (a.end_gseq > a.start_global.seq && (end == global_signed.end() || end->second != global.hash)) {
    rep.records = 0;
    fail(Breakage::kUnsignedTail, a.records.size(),
         "no valid global checkpoint signs the archive's last record " + std::to_string(a.end_gseq));
    rep.failed_seq = a.end_gseq;
    return rep;
  }
  return rep;
}

}  // namespace coffre::audit
