#include "coffre/audit/bundle.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "fields.h"

namespace coffre::audit {
namespace {

using nlohmann::json;

constexpr std::string_view kBundleFormat = "coffre-audit-export";

// --- string helpers ----------------------------------------------------------------------------

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// JSON strings must be UTF-8; any other bytes (an object key may hold them) go as {"hex": ...}
// so that the verifier hashes exactly the stored bytes.
json JsonString(const std::string& s) {
  if (ValidUtf8(s)) {
    return s;
  }
  return json{{"hex", HexEncode(AsBytes(s))}};
}

std::string Iso(UnixMillis ms) { return FormatIso8601(FromUnixMillis(ms)); }

// --- CSV (RFC 4180) -----------------------------------------------------------------------------

const std::vector<std::string> kCsvColumns = {
    "type",           "seq",     "time",   "time_ms",    "tenant",    "key_id",     "key_version",
    "operation",      "action",  "bucket", "object_key", "object_id", "request_id", "access_key_id",
    "client_address", "outcome", "prev",   "hash",       "scope",     "signer",     "signature"};

std::string CsvField(std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string(v);
  }
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') {
      out += "\"\"";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string CsvRow(const std::map<std::string, std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < kCsvColumns.size(); ++i) {
    if (i > 0) {
      line.push_back(',');
    }
    auto it = fields.find(kCsvColumns[i]);
    if (it != fields.end()) {
      line += CsvField(it->second);
    }
  }
  line += "\r\n";
  return line;
}

struct CsvRowRead {
  std::vector<std::string> cells;
  size_t line = 0;
};

Result<std::vector<CsvRowRead>> ParseCsv(std::string_view text) {
  std::vector<CsvRowRead> rows;
  size_t i = 0;
  size_t line = 1;
  while (i < text.size()) {
    CsvRowRead row;
    row.line = line;
    std::string cell;
    for (;;) {
      if (i < text.size() && text[i] == '"') {
        ++i;
        for (;;) {
          if (i >= text.size()) {
            return Status::InvalidArgument("line " + std::to_string(row.line) + ": unterminated quoted field");
          }
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              cell.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') {
            ++line;
          }
          cell.push_back(text[i++]);
        }
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\r' && text[i] != '\n') {
          if (text[i] == '"') {
            return Status::InvalidArgument("line " + std::to_string(line) + ": stray quote in a field");
          }
          cell.push_back(text[i++]);
        }
      }
      row.cells.push_back(std::move(cell));
      cell.clear();
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < text.size() && text[i] == '\r') {
        ++i;
      }
      if (i < text.size() && text[i] == '\n') {
        ++i;
        ++line;
      } else if (i < text.size()) {
        return Status::InvalidArgument("line " + std::to_string(line) + ": malformed field");
      }
      break;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

namespace internal {

std::optional<uint64_t> ParseU64(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::optional<int64_t> ParseI64(std::string_view s) {
  bool neg = false;
  if (!s.empty() && s.front() == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  auto v = ParseU64(s);
  if (!v || *v > static_cast<uint64_t>(INT64_MAX)) {
    return std::nullopt;
  }
  return neg ? -static_cast<int64_t>(*v) : static_cast<int64_t>(*v);
}

Status CheckSignedWith(std::string_view what, ByteView file_key, ByteView given_key) {
  if (!ConstantTimeEquals(file_key, given_key)) {
    return Status::InvalidArgument("the " + std::string(what) + " was signed by another key (its key " +
                                   KeyId(file_key) + " is not the given key " + KeyId(given_key) + ")");
  }
  return Status::Ok();
}

// --- record / checkpoint field maps (shared by both formats) ------------------------------------

Status Bad(size_t line, const std::string& what) {
  return Status::InvalidArgument("line " + std::to_string(line) + ": " + what);
}

Result<Record> RecordFromFields(const FieldGetter& get, size_t line) {
  Record r;
  auto need = [&](const char* name) -> Result<std::string> {
    auto v = get(name);
    if (!v) {
      return Bad(line, std::string("record lacks '") + name + "'");
    }
    return *v;
  };
  COFFRE_ASSIGN_OR_RETURN(std::string seq, need("seq"));
  COFFRE_ASSIGN_OR_RETURN(std::string time_ms, need("time_ms"));
  COFFRE_ASSIGN_OR_RETURN(std::string key_version, need("key_version"));
  COFFRE_ASSIGN_OR_RETURN(std::string prev, need("prev"));
  auto s = ParseU64(seq);
  auto t = ParseI64(time_ms);
  auto kv = ParseU64(key_version);
  auto p = ParseHashHex(prev);
  if (!s || !t || !kv || *kv > UINT32_MAX || !p) {
    return Bad(line, "record has a malformed seq, time_ms, key_version or prev");
  }
  r.seq = *s;
  r.time_ms = *t;
  r.key_version = static_cast<uint32_t>(*kv);
  r.prev = *p;
  COFFRE_ASSIGN_OR_RETURN(r.tenant, need("tenant"));
  COFFRE_ASSIGN_OR_RETURN(r.key_id, need("key_id"));
  COFFRE_ASSIGN_OR_RETURN(r.operation, need("operation"));
  COFFRE_ASSIGN_OR_RETURN(r.action, need("action"));
  COFFRE_ASSIGN_OR_RETURN(r.bucket, need("bucket"));
  COFFRE_ASSIGN_OR_RETURN(r.object_key, need("object_key"));
  COFFRE_ASSIGN_OR_RETURN(r.object_id, need("object_id"));
  COFFRE_ASSIGN_OR_RETURN(r.request_id, need("request_id"));
  COFFRE_ASSIGN_OR_RETURN(r.access_key_id, need("access_key_id"));
  COFFRE_ASSIGN_OR_RETURN(r.client_address, need("client_address"));
  COFFRE_ASSIGN_OR_RETURN(r.outcome, need("outcome"));
  return r;
}

Result<Checkpoint> CheckpointFromFields(const FieldGetter& get, size_t line, const char* head_field) {
  Checkpoint c;
  auto scope = get("scope");
  auto tenant = get("tenant");
  auto seq = get("seq");
  auto head = get(head_field);
  auto time_ms = get("time_ms");
  auto signer = get("signer");
  auto sig = get("signature");
  if (!scope || !tenant || !seq || !head || !time_ms || !signer || !sig) {
    return Bad(line, "checkpoint lacks a field");
  }
  auto s = ParseU64(*seq);
  auto h = ParseHashHex(*head);
  auto t = ParseI64(*time_ms);
  auto raw_sig = HexDecode(*sig);
  if (!s || !h || !t || !raw_sig) {
    return Bad(line, "checkpoint has a malformed seq, head, time_ms or signature");
  }
  c.scope = *scope;
  c.tenant = *tenant;
  c.seq = *s;
  c.head = *h;
  c.time_ms = *t;
  c.signer = *signer;
  c.signature = std::move(*raw_sig);
  return c;
}

std::map<std::string, std::string> RecordFields(const Record& r) {
  return {{"type", "record"},
          {"seq", std::to_string(r.seq)},
          {"time", Iso(r.time_ms)},
          {"time_ms", std::to_string(r.time_ms)},
          {"tenant", r.tenant},
          {"key_id", r.key_id},
          {"key_version", std::to_string(r.key_version)},
          {"operation", r.operation},
          {"action", r.action},
          {"bucket", r.bucket},
          {"object_key", r.object_key},
          {"object_id", r.object_id},
          {"request_id", r.request_id},
          {"access_key_id", r.access_key_id},
          {"client_address", r.client_address},
          {"outcome", r.outcome},
          {"prev", HashHex(r.prev)},
          {"hash", HashHex(RecordHash(r))}};
}

std::map<std::string, std::string> CheckpointFields(const Checkpoint& c) {
  return {{"type", "checkpoint"},
          {"scope", c.scope},
          {"tenant", c.tenant},
          {"seq", std::to_string(c.seq)},
          {"head", HashHex(c.head)},
          {"time", Iso(c.time_ms)},
          {"time_ms", std::to_string(c.time_ms)},
          {"signer", c.signer},
          {"signature", HexEncode(c.signature)}};
}

json FieldsToJson(const std::map<std::string, std::string>& fields) {
  json j = json::object();
  for (const auto& [k, v] : fields) {
    if (k == "seq" || k == "key_version" || k == "gseq") {
      j[k] = *ParseU64(v);
    } else if (k == "time_ms") {
      j[k] = *ParseI64(v);
    } else {
      j[k] = JsonString(v);
    }
  }
  return j;
}

FieldGetter JsonGetter(const json& j) {
  return [&j](const std::string& name) -> std::optional<std::string> {
    if (!j.contains(name)) {
      return std::nullopt;
    }
    const json& v = j[name];
    if (v.is_string()) {
      return v.get<std::string>();
    }
    if (v.is_number_unsigned()) {
      return std::to_string(v.get<uint64_t>());
    }
    if (v.is_number_integer()) {
      return std::to_string(v.get<int64_t>());
    }
    if (v.is_object() && v.size() == 1 && v.contains("hex") && v["hex"].is_string()) {
      auto raw = HexDecode(v["hex"].get<std::string>());
      if (raw) {
        return std::string(AsChars(*raw));
      }
    }
    return std::nullopt;
  };
}

}  // namespace internal

namespace {

using internal::Bad;
using internal::CheckpointFields;
using internal::CheckpointFromFields;
using internal::FieldGetter;
using internal::FieldsToJson;
using internal::JsonGetter;
using internal::ParseI64;
using internal::ParseU64;
using internal::RecordFields;
using internal::RecordFromFields;

// Lines of the bundle, in order: the bundle header, then records and checkpoints by seq (a
// checkpoint right after the record it signs).
template <typename EmitRecord, typename EmitCheckpoint>
void Interleave(const TenantExport& data, EmitRecord emit_record, EmitCheckpoint emit_checkpoint) {
  size_t c = 0;
  for (const auto& r : data.records) {
    while (c < data.checkpoints.size() && data.checkpoints[c].seq < r.seq) {
      emit_checkpoint(data.checkpoints[c++]);
    }
    emit_record(r);
    while (c < data.checkpoints.size() && data.checkpoints[c].seq == r.seq) {
      emit_checkpoint(data.checkpoints[c++]);
    }
  }
  while (c < data.checkpoints.size()) {
    emit_checkpoint(data.checkpoints[c++]);
  }
}

}  // namespace

std::string_view BreakageName(Breakage b) {
  switch (b) {
    case Breakage::kNone:
      return "none";
    case Breakage::kAltered:
      return "altered";
    case Breakage::kMissing:
      return "missing";
    case Breakage::kReordered:
      return "reordered";
    case Breakage::kUnsignedTail:
      return "unsigned tail";
    case Breakage::kForeign:
      return "foreign";
    case Breakage::kBadSignature:
      return "bad signature";
  }
  return "unknown";
}

std::string EncodeBundle(const TenantExport& data, const BundleInfo& info, BundleFormat format) {
  std::string out;
  if (format == BundleFormat::kJsonl) {
    json header = {{"type", "bundle"},
                   {"format", kBundleFormat},
                   {"version", kFormatVersion},
                   {"tenant", JsonString(info.tenant)},
                   {"tenant_name", JsonString(info.tenant_name)},
                   {"from", Iso(info.from_ms)},
                   {"to", Iso(info.to_ms)},
                   {"from_ms", info.from_ms},
                   {"to_ms", info.to_ms},
                   {"generated", Iso(info.generated_ms)},
                   {"public_key", EncodePublicKey(data.public_key)}};
    out += header.dump() + "\n";
    auto emit = [&](const std::map<std::string, std::string>& fields) { out += FieldsToJson(fields).dump() + "\n"; };
    Interleave(
        data, [&](const Record& r) { emit(RecordFields(r)); }, [&](const Checkpoint& c) { emit(CheckpointFields(c)); });
    return out;
  }
  out += CsvRow([] {
    std::map<std::string, std::string> m;
    for (const auto& c : kCsvColumns) {
      m[c] = c;
    }
    return m;
  }());
  out += CsvRow({{"type", "bundle"},
                 {"tenant", info.tenant},
                 {"action", std::string(kBundleFormat) + "/" + std::to_string(kFormatVersion)},
                 {"bucket", info.tenant_name},
                 {"time", Iso(info.generated_ms)},
                 {"time_ms", std::to_string(info.generated_ms)},
                 {"object_key", std::to_string(info.from_ms)},
                 {"object_id", std::to_string(info.to_ms)},
                 {"signer", EncodePublicKey(data.public_key)}});
  Interleave(
      data, [&](const Record& r) { out += CsvRow(RecordFields(r)); },
      [&](const Checkpoint& c) {
        auto f = CheckpointFields(c);
        f["hash"] = f["head"];  // CSV has one hash column: a checkpoint's is the head it signs
        f.erase("head");
        out += CsvRow(f);
      });
  return out;
}

Result<ParsedBundle> ParseBundle(std::string_view text) {
  ParsedBundle b;
  if (text.empty()) {
    return Status::InvalidArgument("the file is empty: not a Coffre audit bundle");
  }
  if (text.back() != '\n') {
    return Status::InvalidArgument("the file does not end with a complete line (truncated mid-line?)");
  }
  if (text.front() == '{') {
    size_t line_no = 0;
    size_t pos = 0;
    bool have_header = false;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view line = text.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
        return Bad(line_no, "not a JSON object with a \"type\"");
      }
      FieldGetter get = JsonGetter(j);
      const std::string type = j["type"].get<std::string>();
      if (!have_header) {
        if (type != "bundle" || get("format") != std::string(kBundleFormat)) {
          return Status::InvalidArgument("line 1: not a Coffre audit export (no bundle header)");
        }
        if (get("version") != std::to_string(kFormatVersion)) {
          return Status::InvalidArgument("line 1: unsupported bundle version");
        }
        auto tenant = get("tenant");
        auto key = get("public_key");
        auto from = get("from_ms");
        auto to = get("to_ms");
        if (!tenant || !key || !from || !to || !ParseI64(*from) || !ParseI64(*to)) {
          return Status::InvalidArgument("line 1: bundle header lacks tenant, public_key or time range");
        }
        b.info.tenant = *tenant;
        b.info.tenant_name = get("tenant_name").value_or("");
        b.info.from_ms = *ParseI64(*from);
        b.info.to_ms = *ParseI64(*to);
        COFFRE_ASSIGN_OR_RETURN(b.public_key, DecodePublicKey(*key));
        have_header = true;
      } else if (type == "record") {
        COFFRE_ASSIGN_OR_RETURN(Record r, RecordFromFields(get, line_no));
        b.data.records.push_back(std::move(r));
        b.record_lines.push_back(line_no);
      } else if (type == "checkpoint") {
        COFFRE_ASSIGN_OR_RETURN(Checkpoint c, CheckpointFromFields(get, line_no, "head"));
        b.data.checkpoints.push_back(std::move(c));
      } else {
        return Bad(line_no, "unknown line type '" + type + "'");
      }
    }
  } else {
    COFFRE_ASSIGN_OR_RETURN(std::vector<CsvRowRead> rows, ParseCsv(text));
    if (rows.size() < 2 || rows[0].cells != kCsvColumns) {
      return Status::InvalidArgument("line 1: not a Coffre audit export (unexpected CSV header)");
    }
    for (size_t i = 1; i < rows.size(); ++i) {
      const CsvRowRead& row = rows[i];
      if (row.cells.size() != kCsvColumns.size()) {
        return Bad(row.line, "expected " + std::to_string(kCsvColumns.size()) + " fields");
      }
      FieldGetter get = [&row](const std::string& name) -> std::optional<std::string> {
        auto it = std::find(kCsvColumns.begin(), kCsvColumns.end(), name == "head" ? "hash" : name);
        if (it == kCsvColumns.end()) {
          return std::nullopt;
        }
        return row.cells[static_cast<size_t>(it - kCsvColumns.begin())];
      };
      const std::string type = *get("type");
      if (i == 1) {
        if (type != "bundle" || get("action") != std::string(kBundleFormat) + "/" + std::to_string(kFormatVersion)) {
          return Bad(row.line, "not a Coffre audit export (no bundle row)");
        }
        auto from = ParseI64(*get("object_key"));
        auto to = ParseI64(*get("object_id"));
        if (!from || !to) {
          return Bad(row.line, "bundle row has a malformed time range");
        }
        b.info.tenant = *get("tenant");
        b.info.tenant_name = *get("bucket");
        b.info.from_ms = *from;
        b.info.to_ms = *to;
        COFFRE_ASSIGN_OR_RETURN(b.public_key, DecodePublicKey(*get("signer")));
      } else if (type == "record") {
        COFFRE_ASSIGN_OR_RETURN(Record r, RecordFromFields(get, row.line));
        b.data.records.push_back(std::move(r));
        b.record_lines.push_back(row.line);
      } else if (type == "checkpoint") {
        COFFRE_ASSIGN_OR_RETURN(Checkpoint c, CheckpointFromFields(get, row.line, "head"));
        b.data.checkpoints.push_back(std::move(c));
      } else {
        return Bad(row.line, "unknown row type '" + type + "'");
      }
    }
  }
  b.data.tenant = b.info.tenant;
  b.data.public_key = b.public_key;
  return b;
}

namespace {

// Verifies a parsed bundle in steps, each of which either passes or records the first breakage it
// finds in the report and returns false. Each step assumes the ones before it passed (CheckStart
// needs a record, say), so they run in order and stop at the first failure.
class BundleVerifier {
 public:
  BundleVerifier(const ParsedBundle& bundle, ByteView public_key)
      : bundle_(bundle), public_key_(public_key), recs_(bundle.data.records) {}

  VerifyReport Run() {
    if (CollectSignedHeads() && CheckOrder() && CheckNotEmpty() && CheckStart() && WalkChain()) {
      CheckEnd();
    }
    return rep_;
  }

 private:
  // Checkpoints: the tenant's, and genuinely signed.
  bool CollectSignedHeads() {
    for (const auto& c : bundle_.data.checkpoints) {
      if (c.scope != kScopeTenant || c.tenant != bundle_.info.tenant) {
        rep_.failed_seq = c.seq;
        rep_.breakage = Breakage::kForeign;
        rep_.message =
            "a checkpoint at seq " + std::to_string(c.seq) + " belongs to another chain ('" + c.tenant + "')";
        return false;
      }
      if (!VerifyCheckpoint(public_key_, c)) {
        rep_.failed_seq = c.seq;
        rep_.breakage = Breakage::kBadSignature;
        rep_.message = "the checkpoint at seq " + std::to_string(c.seq) +
                       " has an invalid signature (forged or altered checkpoint)";
        return false;
      }
      auto [it, inserted] = signed_heads_.emplace(c.seq, c.head);
      if (!inserted && it->second != c.head) {
        rep_.failed_seq = c.seq;
        rep_.breakage = Breakage::kBadSignature;
        rep_.message = "two validly signed checkpoints disagree about seq " + std::to_string(c.seq);
        return false;
      }
    }
    return true;
  }

  // Records out of order: name the first one that is not where its seq belongs.
  bool CheckOrder() {
    std::vector<uint64_t> sorted;
    for (const auto& r : recs_) {
      sorted.push_back(r.seq);
    }
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < recs_.size(); ++i) {
      if (recs_[i].seq != sorted[i]) {
        return Fail(Breakage::kReordered, i,
                    Where(i) + " is out of order: record seq " + std::to_string(sorted[i]) + " belongs here");
      }
    }
    return true;
  }

  // A bundle proves nothing without records, and cannot be told from one whose records were all
  // removed: it never verifies.
  bool CheckNotEmpty() {
    if (!recs_.empty()) {
      return true;
    }
    rep_.breakage = Breakage::kMissing;
    rep_.message = signed_heads_.empty()
                       ? "the bundle holds no record and no checkpoint: its records and checkpoints were removed (an "
                         "export always holds at least one record)"
                       : "the bundle holds " + std::to_string(bundle_.data.checkpoints.size()) +
                             " checkpoint(s) but no record: its records were removed";
    return false;
  }

  // Where it starts: at seq 1 (the chain's start), or right after a checkpoint that signs the
  // first record's predecessor. Otherwise records before it were cut, with their checkpoints.
  bool CheckStart() {
    const Record& first = recs_.front();
    if (first.tenant == bundle_.info.tenant && first.seq > 1) {
      auto anchor = signed_heads_.find(first.seq - 1);
      if (anchor == signed_heads_.end()) {
        const uint64_t earlier =
            signed_heads_.empty() || signed_heads_.begin()->first >= first.seq ? 0 : signed_heads_.begin()->first;
        return Fail(Breakage::kMissing, 0,
                    "the bundle starts at " + Where(0) + ", but no checkpoint signs its predecessor seq " +
                        std::to_string(first.seq - 1) + ": records seq " + std::to_string(earlier + 1) + ".." +
                        std::to_string(first.seq - 1) + " were cut from the start");
      }
      if (anchor->second != first.prev) {
        return Fail(Breakage::kAltered, 0,
                    Where(0) + " does not link to the signed checkpoint at seq " + std::to_string(first.seq - 1) +
                        " (this record was altered)");
      }
    } else if (first.tenant == bundle_.info.tenant && first.prev != Hash{}) {
      return Fail(Breakage::kAltered, 0,
                  Where(0) + " is the chain's first record but links to a predecessor (altered)");
    }
    if (!signed_heads_.empty() && signed_heads_.begin()->first + 1 < first.seq) {
      const uint64_t seq = signed_heads_.begin()->first;
      return Fail(Breakage::kMissing, 0,
                  "the bundle holds a checkpoint at seq " + std::to_string(seq) + " but starts at " + Where(0) +
                      ": records seq " + std::to_string(seq + 1) + ".." + std::to_string(first.seq - 1) +
                      " were cut from the start");
    }
    return true;
  }

  // Each record is the tenant's, follows its predecessor by one seq, links to its hash, and
  // matches any checkpoint that signs it; counts the records and their time span.
  bool WalkChain() {
    Hash prev_hash{};
    for (size_t i = 0; i < recs_.size(); ++i) {
      const Record& r = recs_[i];
      if (r.tenant != bundle_.info.tenant) {
        return Fail(Breakage::kForeign, i, Where(i) + " belongs to another tenant ('" + r.tenant + "')");
      }
      const Hash h = RecordHash(r);
      if (i > 0) {
        const Record& p = recs_[i - 1];
        if (r.seq <= p.seq) {
          return Fail(Breakage::kReordered, i,
                      Where(i) + " comes after record seq " + std::to_string(p.seq) + ": records are out of order");
        }
        if (r.seq != p.seq + 1) {
          return Fail(Breakage::kMissing, i,
                      "records seq " + std::to_string(p.seq + 1) +
                          (r.seq - 1 > p.seq + 1 ? ".." + std::to_string(r.seq - 1) : std::string()) +
                          " are missing before " + Where(i));
        }
        if (r.prev != prev_hash) {
          return Fail(Breakage::kAltered, i - 1,
                      Where(i - 1) +
                          " was altered: its hash does not match the link in the next record (or that "
                          "record's prev field was altered)");
        }
      }
      if (auto it = signed_heads_.find(r.seq); it != signed_heads_.end() && it->second != h) {
        return Fail(Breakage::kAltered, i, Where(i) + " was altered: it does not match the signed checkpoint");
      }
      prev_hash = h;
      if (rep_.records == 0 || r.time_ms < rep_.first_ms) {
        rep_.first_ms = r.time_ms;
      }
      if (rep_.records == 0 || r.time_ms > rep_.last_ms) {
        rep_.last_ms = r.time_ms;
      }
      ++rep_.records;
    }
    return true;
  }

  // The last checkpoint signs the last record: none signs past it (records cut from the end), and
  // no record comes after the last one signed (an unsigned tail).
  bool CheckEnd() {
    const uint64_t last_seq = recs_.back().seq;
    const uint64_t first_seq = recs_.front().seq;
    const uint64_t max_signed = signed_heads_.empty() ? 0 : signed_heads_.rbegin()->first;
    if (max_signed > last_seq) {
      rep_.records = 0;
      Fail(Breakage::kMissing, recs_.size(),
           "the bundle ends at record seq " + std::to_string(last_seq) + " but a checkpoint signs seq " +
               std::to_string(max_signed) + ": records seq " + std::to_string(last_seq + 1) + ".." +
               std::to_string(max_signed) + " were removed from the end");
      rep_.failed_seq = last_seq + 1;
      return false;
    }
    if (max_signed < last_seq) {
      size_t i = 0;
      while (i < recs_.size() && recs_[i].seq <= max_signed) {
        ++i;
      }
      if (max_signed < first_seq) {
        i = 0;
      }
      rep_.records = i;
      return Fail(Breakage::kUnsignedTail, i,
                  "unsigned tail: " + Where(i) + " and the " + std::to_string(recs_.size() - i - 1) +
                      " record(s) after it are covered by no checkpoint");
    }
    return true;
  }

  // Records the breakage at record `index` (none when index is past the end); always false.
  bool Fail(Breakage kind, size_t index, std::string message) {
    rep_.breakage = kind;
    if (index < recs_.size()) {
      rep_.failed_seq = recs_[index].seq;
      rep_.failed_line = bundle_.record_lines[index];
    }
    rep_.message = std::move(message);
    return false;
  }

  std::string Where(size_t index) const {
    return "record seq " + std::to_string(recs_[index].seq) + " (line " + std::to_string(bundle_.record_lines[index]) +
           ")";
  }

  const ParsedBundle& bundle_;
  ByteView public_key_;
  const std::vector<Record>& recs_;
  std::map<uint64_t, Hash> signed_heads_;
  VerifyReport rep_;
};

}  // namespace

Result<VerifyReport> VerifyBundle(const ParsedBundle& bundle, ByteView public_key) {
  COFFRE_RETURN_IF_ERROR(internal::CheckSignedWith("bundle", bundle.public_key, public_key));
  return BundleVerifier(bundle, public_key).Run();
}

std::string BundleReadme(const BundleInfo& info, std::string_view bundle_file_name, ByteView public_key) {
  std::string s;
  s += "Coffre audit export\n===================\n\n";
  s += "File:      " + std::string(bundle_file_name) + "\n";
  s += "Tenant:    " + info.tenant_name + " (id " + info.tenant + ")\n";
  s += "Range:     " + Iso(info.from_ms) + " to " + Iso(info.to_ms) + "\n";
  s += "Generated: " + Iso(info.generated_ms) + "\n";
  s += "Signed by: " + EncodePublicKey(public_key) + "\n\n";
  s += "What it holds\n-------------\n"
       "One line per key-usage record of this tenant (type \"record\"), in chain order, and the signed\n"
       "checkpoints (type \"checkpoint\") of the tenant's chain that cover them. Records after --to may\n"
       "be included, up to the first checkpoint that signs the last requested record, so that every\n"
       "record is covered by a signature; records before --from may be included, back to the\n"
       "checkpoint that signs the first record's predecessor, so that the bundle proves where it\n"
       "starts. A range without records holds the tenant's last record before it.\n\n";
  s += "How to verify\n-------------\n"
       "1. Obtain the gateway's audit public key through a channel you trust (not from this file):\n"
       "   the operator runs `coffre audit public-key` on the gateway host.\n"
       "2. Run:   coffre audit verify " +
       std::string(bundle_file_name) +
       " --public-key KEY\n"
       "   Exit status 0: every record is linked and covered by a valid signature; it prints the number\n"
       "   of records and the time span. Exit status 3: the file was tampered with; it names the first\n"
       "   record that breaks and why (altered, missing, reordered, unsigned tail, foreign, bad\n"
       "   signature); a bundle without records, or cut at its start, fails as missing.\n"
       "   Exit status 1: not a Coffre bundle, or signed by another key.\n"
       "3. Independent check: the canonical form, hashes and signatures are specified in docs/AUDIT.md\n"
       "   of the Coffre sources (SHA-256 and Ed25519 only), so any tool can recompute them.\n";
  return s;
}

}  // namespace coffre::audit
