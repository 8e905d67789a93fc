#pragma once

// Field-level encoding of records and checkpoints, shared by export bundles and archives, and the
// signed byte encoding of records and checkpoints. Private to the audit module.

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/audit/record.h"

namespace coffre::audit::internal {

// Appends name=<length>:<bytes>\n to the bytes that are hashed or signed: length-prefixed, so no
// value can imitate a field boundary.
void AppendField(std::string& out, std::string_view name, std::string_view value);

// Looks a field up by name; nullopt when absent or malformed.
using FieldGetter = std::function<std::optional<std::string>(const std::string&)>;

std::map<std::string, std::string> RecordFields(const Record& r);
std::map<std::string, std::string> CheckpointFields(const Checkpoint& c);
// Numbers (seq, time_ms, key_version, gseq) as JSON numbers; other values as strings, or
// {"hex": ...} for bytes that are not UTF-8.
nlohmann::json FieldsToJson(const std::map<std::string, std::string>& fields);
FieldGetter JsonGetter(const nlohmann::json& j);
Result<Record> RecordFromFields(const FieldGetter& get, size_t line);
Result<Checkpoint> CheckpointFromFields(const FieldGetter& get, size_t line, const char* head_field);
// InvalidArgument "the <what> was signed by another key ..." unless the file's key is the given one.
Status CheckSignedWith(std::string_view what, ByteView file_key, ByteView given_key);
Status Bad(size_t line, const std::string& what);
std::optional<uint64_t> ParseU64(std::string_view s);
std::optional<int64_t> ParseI64(std::string_view s);

}  // namespace coffre::audit::internal
