#include "catalog/attributes.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

namespace coffre::catalog {
namespace {

constexpr char kBase64Form[] = "$b64";

}  // namespace

std::string EncodeAttributes(const Attributes& attributes) {
  nlohmann::json plain = nlohmann::json::object();
  for (const auto& [k, v] : attributes) {
    plain[k] = v;
  }
  try {
    return plain.dump();
  } catch (const nlohmann::json::exception&) {
    // dump() refuses strings that are not valid UTF-8; fall through to the lossless form.
  }
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& [k, v] : attributes) {
    pairs.push_back(nlohmann::json::array({Base64Encode(AsBytes(k)), Base64Encode(AsBytes(v))}));
  }
  nlohmann::json wrapped = nlohmann::json::object();
  wrapped[kBase64Form] = std::move(pairs);
  return wrapped.dump();
}

Result<Attributes> DecodeAttributes(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("catalog: attributes are not a JSON object");
  }
  Attributes out;
  if (j.size() == 1 && j.contains(kBase64Form) && j.at(kBase64Form).is_array()) {
    for (const auto& pair : j.at(kBase64Form)) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
        return Status::Corruption("catalog: malformed base64 attributes");
      }
      auto k = Base64Decode(pair[0].get_ref<const std::string&>());
      auto v = Base64Decode(pair[1].get_ref<const std::string&>());
      if (!k || !v) {
        return Status::Corruption("catalog: malformed base64 attributes");
      }
      out.emplace(std::string(AsChars(*k)), std::string(AsChars(*v)));
    }
    return out;
  }
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) {
      return Status::Corruption("catalog: attribute value is not a string");
    }
    out.emplace(k, v.get_ref<const std::string&>());
  }
  return out;
}

std::string EncodeObjectLock(const ObjectLock& lock) {
  if (lock.empty()) return {};
  Attributes fields;
  if (!lock.mode.empty()) {
    fields["mode"] = lock.mode;
    fields["retain_until"] = std::to_string(lock.retain_until);
  }
  if (!lock.legal_hold.empty()) fields["legal_hold"] = lock.legal_hold;
  return EncodeAttributes(fields);
}

Result<ObjectLock> DecodeObjectLock(std::string_view text) {
  ObjectLock lock;
  if (text.empty()) return lock;
  COFFRE_ASSIGN_OR_RETURN(Attributes fields, DecodeAttributes(text));
  for (const auto& [name, value] : fields) {
    if (name == "mode" && (value == kGovernanceMode || value == kComplianceMode)) {
      lock.mode = value;
    } else if (name == "legal_hold" && (value == kLegalHoldOn || value == kLegalHoldOff)) {
      lock.legal_hold = value;
    } else if (name == "retain_until") {
      int64_t ms = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return Status::Corruption("catalog: object lock date is not a number");
      }
      lock.retain_until = ms;
    } else {
      return Status::Corruption("catalog: unknown object lock field or value: " + name);
    }
  }
  if (lock.mode.empty() != (fields.count("retain_until") == 0)) {
    return Status::Corruption("catalog: object lock retention without its mode or date");
  }
  return lock;
}

}  // namespace coffre::catalog
