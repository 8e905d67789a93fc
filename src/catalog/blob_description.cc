#include "coffre/catalog/blob_description.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <type_traits>

#include "catalog/attributes.h"

namespace coffre::catalog {
namespace {

using nlohmann::json;

constexpr int kEncodingVersion = 1;
constexpr uint32_t kMaxPartNumber = 10000;

std::string_view KindName(BlobDescription::Kind kind) {
  switch (kind) {
    case BlobDescription::Kind::kObject:
      return "object";
    case BlobDescription::Kind::kPart:
      return "part";
    case BlobDescription::Kind::kManifest:
      return "manifest";
    case BlobDescription::Kind::kKeyCopies:
      return "key_copies";
    case BlobDescription::Kind::kObjectUpdate:
      return "object_update";
    case BlobDescription::Kind::kDeleteMarker:
      return "delete_marker";
  }
  return "object";
}

// Keys and attribute values come from clients and need not be UTF-8, which JSON strings cannot
// carry: a key that is not is stored base64-encoded under "key_b64", and attributes use the
// catalog's own lossless text form.
void PutKey(json& j, const std::string& key) {
  try {
    (void)json(key).dump();
    j["key"] = key;
  } catch (const json::exception&) {
    j["key_b64"] = Base64Encode(AsBytes(key));
  }
}

json PartToJson(const ObjectPart& p) {
  return {{"part_number", p.part_number},
          {"blob_id", p.blob_id},
          {"size", p.size},
          {"etag", p.etag},
          {"attributes", EncodeAttributes(p.attributes)}};
}

// Reads one field, refusing a missing or mistyped one: a description is authenticated, so a bad
// one is a writer's bug or a version this reader does not know, never something to guess at.
template <typename T>
Status Field(const json& j, const char* name, T& out) {
  auto it = j.find(name);
  if (it == j.end()) return Status::Corruption(std::string("blob description lacks '") + name + "'");
  // nlohmann converts between number kinds silently (-1 into a uint64_t); check the kind first.
  bool typed = false;
  if constexpr (std::is_same_v<T, std::string>) {
    typed = it->is_string();
  } else if constexpr (std::is_same_v<T, bool>) {
    typed = it->is_boolean();
  } else if constexpr (std::is_unsigned_v<T>) {
    typed = it->is_number_unsigned() && it->template get<uint64_t>() <= std::numeric_limits<T>::max();
  } else {
    static_assert(std::is_signed_v<T>);
    typed = it->is_number_integer() &&
            !(it->is_number_unsigned() && it->template get<uint64_t>() > uint64_t(std::numeric_limits<T>::max()));
  }
  if (!typed) return Status::Corruption(std::string("blob description field '") + name + "' has the wrong type");
  out = it->template get<T>();
  return Status::Ok();
}

Status ReadAttributes(const json& j, Attributes& out) {
  std::string text;
  COFFRE_RETURN_IF_ERROR(Field(j, "attributes", text));
  auto decoded = DecodeAttributes(text);
  if (!decoded.ok()) return Status::Corruption("blob description attributes: " + decoded.status().message());
  out = std::move(decoded).value();
  return Status::Ok();
}

// Tags in the attributes' text form, as the catalog stores them.
Status ReadTags(const json& j, Tags& out) {
  std::string text;
  COFFRE_RETURN_IF_ERROR(Field(j, "tags", text));
  auto decoded = DecodeAttributes(text);
  if (!decoded.ok()) return Status::Corruption("blob description tags: " + decoded.status().message());
  out = std::move(decoded).value();
  return Status::Ok();
}

// An Object Lock state in the catalog's text form; absent: none (as before Object Lock existed).
Status ReadLock(const json& j, ObjectLock& out) {
  if (!j.contains("lock")) return Status::Ok();
  std::string text;
  COFFRE_RETURN_IF_ERROR(Field(j, "lock", text));
  auto decoded = DecodeObjectLock(text);
  if (!decoded.ok()) return Status::Corruption("blob description lock: " + decoded.status().message());
  out = std::move(decoded).value();
  return Status::Ok();
}

Status ReadKey(const json& j, std::string& out) {
  if (!j.contains("key_b64")) return Field(j, "key", out);
  std::string encoded;
  COFFRE_RETURN_IF_ERROR(Field(j, "key_b64", encoded));
  auto key = Base64Decode(encoded);
  if (!key) return Status::Corruption("blob description 'key_b64' is not base64");
  out.assign(AsChars(*key));
  return Status::Ok();
}

Status CheckPartNumber(uint32_t number) {
  if (number < 1 || number > kMaxPartNumber) {
    return Status::Corruption("blob description part number " + std::to_string(number) + " out of 1..10000");
  }
  return Status::Ok();
}

Result<ObjectPart> PartFromJson(const json& j) {
  if (!j.is_object()) return Status::Corruption("blob description part is not an object");
  ObjectPart p;
  COFFRE_RETURN_IF_ERROR(Field(j, "part_number", p.part_number));
  COFFRE_RETURN_IF_ERROR(CheckPartNumber(p.part_number));
  COFFRE_RETURN_IF_ERROR(Field(j, "blob_id", p.blob_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "size", p.size));
  COFFRE_RETURN_IF_ERROR(Field(j, "etag", p.etag));
  COFFRE_RETURN_IF_ERROR(ReadAttributes(j, p.attributes));
  return p;
}

json KeyCopyToJson(const KeyCopy& k) {
  return {{"blob_id", k.blob_id},
          {"tenant_key_version", k.tenant_key_version},
          {"wrapped_data_key", Base64Encode(k.wrapped_data_key)}};
}

Result<KeyCopy> KeyCopyFromJson(const json& j) {
  if (!j.is_object()) return Status::Corruption("blob description key copy is not an object");
  KeyCopy k;
  COFFRE_RETURN_IF_ERROR(Field(j, "blob_id", k.blob_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "tenant_key_version", k.tenant_key_version));
  std::string wrapped;
  COFFRE_RETURN_IF_ERROR(Field(j, "wrapped_data_key", wrapped));
  auto bytes = Base64Decode(wrapped);
  if (!bytes) return Status::Corruption("blob description key copy 'wrapped_data_key' is not base64");
  k.wrapped_data_key = std::move(*bytes);
  return k;
}

Bytes EncodeKeyCopies(const BlobDescription& d) {
  json copies = json::array();
  for (const KeyCopy& k : d.key_copies) copies.push_back(KeyCopyToJson(k));
  const json j = {{"v", kEncodingVersion},
                  {"kind", KindName(d.kind)},
                  {"tenant_id", d.tenant_id},
                  {"last_modified", d.last_modified},
                  {"key_copies", std::move(copies)}};
  const std::string text = j.dump();
  return Bytes(text.begin(), text.end());
}

Result<BlobDescription> DecodeKeyCopies(const json& j) {
  BlobDescription d;
  d.kind = BlobDescription::Kind::kKeyCopies;
  COFFRE_RETURN_IF_ERROR(Field(j, "tenant_id", d.tenant_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "last_modified", d.last_modified));
  auto it = j.find("key_copies");
  if (it == j.end() || !it->is_array() || it->empty()) {
    return Status::Corruption("blob description of key copies lacks its copies");
  }
  for (const json& k : *it) {
    COFFRE_ASSIGN_OR_RETURN(KeyCopy copy, KeyCopyFromJson(k));
    d.key_copies.push_back(std::move(copy));
  }
  return d;
}

Bytes EncodeObjectUpdate(const BlobDescription& d) {
  json j = {{"v", kEncodingVersion},    {"kind", KindName(d.kind)},         {"tenant_id", d.tenant_id},
            {"bucket_id", d.bucket_id}, {"bucket_name", d.bucket_name},     {"object_id", d.object_id},
            {"seq", d.sequence},        {"last_modified", d.last_modified}, {"tags", EncodeAttributes(d.tags)}};
  PutKey(j, d.key);
  if (!d.lock.empty()) j["lock"] = EncodeObjectLock(d.lock);
  const std::string text = j.dump();
  return Bytes(text.begin(), text.end());
}

Result<BlobDescription> DecodeObjectUpdate(const json& j) {
  BlobDescription d;
  d.kind = BlobDescription::Kind::kObjectUpdate;
  COFFRE_RETURN_IF_ERROR(Field(j, "tenant_id", d.tenant_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "bucket_id", d.bucket_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "bucket_name", d.bucket_name));
  COFFRE_RETURN_IF_ERROR(ReadKey(j, d.key));
  COFFRE_RETURN_IF_ERROR(Field(j, "object_id", d.object_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "seq", d.sequence));
  COFFRE_RETURN_IF_ERROR(Field(j, "last_modified", d.last_modified));
  COFFRE_RETURN_IF_ERROR(ReadTags(j, d.tags));
  COFFRE_RETURN_IF_ERROR(ReadLock(j, d.lock));
  return d;
}

}  // namespace

Bytes EncodeBlobDescription(const BlobDescription& d) {
  if (d.kind == BlobDescription::Kind::kKeyCopies) return EncodeKeyCopies(d);
  if (d.kind == BlobDescription::Kind::kObjectUpdate) return EncodeObjectUpdate(d);
  json j = {
      {"v", kEncodingVersion},    {"kind", KindName(d.kind)},         {"tenant_id", d.tenant_id},
      {"bucket_id", d.bucket_id}, {"bucket_name", d.bucket_name},     {"size", d.size},
      {"etag", d.etag},           {"last_modified", d.last_modified}, {"attributes", EncodeAttributes(d.attributes)}};
  PutKey(j, d.key);
  if (d.kind != BlobDescription::Kind::kPart) {
    j["object_id"] = d.object_id;
    j["seq"] = d.sequence;
    if (!d.tags.empty()) j["tags"] = EncodeAttributes(d.tags);
    if (!d.null_version) j["versioned"] = true;
    if (!d.lock.empty()) j["lock"] = EncodeObjectLock(d.lock);
  }
  if (d.kind == BlobDescription::Kind::kPart || d.kind == BlobDescription::Kind::kManifest) {
    j["upload_id"] = d.upload_id;
  }
  if (d.kind == BlobDescription::Kind::kPart) j["part_number"] = d.part_number;
  if (d.kind == BlobDescription::Kind::kManifest) {
    json parts = json::array();
    for (const ObjectPart& p : d.parts) parts.push_back(PartToJson(p));
    j["parts"] = std::move(parts);
  }
  const std::string text = j.dump();
  return Bytes(text.begin(), text.end());
}

Result<BlobDescription> DecodeBlobDescription(ByteView bytes) {
  const json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("blob description is not a JSON object");
  int version = 0;
  COFFRE_RETURN_IF_ERROR(Field(j, "v", version));
  if (version != kEncodingVersion) {
    return Status::Corruption("blob description encoding version " + std::to_string(version) + " is not known");
  }
  BlobDescription d;
  std::string kind;
  COFFRE_RETURN_IF_ERROR(Field(j, "kind", kind));
  if (kind == "object") {
    d.kind = BlobDescription::Kind::kObject;
  } else if (kind == "part") {
    d.kind = BlobDescription::Kind::kPart;
  } else if (kind == "manifest") {
    d.kind = BlobDescription::Kind::kManifest;
  } else if (kind == "delete_marker") {
    d.kind = BlobDescription::Kind::kDeleteMarker;
  } else if (kind == "key_copies") {
    return DecodeKeyCopies(j);
  } else if (kind == "object_update") {
    return DecodeObjectUpdate(j);
  } else {
    return Status::Corruption("blob description kind '" + kind + "' is not known");
  }
  COFFRE_RETURN_IF_ERROR(Field(j, "tenant_id", d.tenant_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "bucket_id", d.bucket_id));
  COFFRE_RETURN_IF_ERROR(Field(j, "bucket_name", d.bucket_name));
  COFFRE_RETURN_IF_ERROR(ReadKey(j, d.key));
  COFFRE_RETURN_IF_ERROR(Field(j, "size", d.size));
  COFFRE_RETURN_IF_ERROR(Field(j, "etag", d.etag));
  COFFRE_RETURN_IF_ERROR(Field(j, "last_modified", d.last_modified));
  COFFRE_RETURN_IF_ERROR(ReadAttributes(j, d.attributes));
  if (d.kind != BlobDescription::Kind::kPart) {
    COFFRE_RETURN_IF_ERROR(Field(j, "object_id", d.object_id));
    if (j.contains("seq")) COFFRE_RETURN_IF_ERROR(Field(j, "seq", d.sequence));  // absent: written before it existed
    if (j.contains("tags")) COFFRE_RETURN_IF_ERROR(ReadTags(j, d.tags));         // absent: none
    if (j.contains("versioned")) {                                               // absent: the null version
      bool versioned = false;
      COFFRE_RETURN_IF_ERROR(Field(j, "versioned", versioned));
      d.null_version = !versioned;
    }
    COFFRE_RETURN_IF_ERROR(ReadLock(j, d.lock));
  }
  if (d.kind == BlobDescription::Kind::kPart || d.kind == BlobDescription::Kind::kManifest) {
    COFFRE_RETURN_IF_ERROR(Field(j, "upload_id", d.upload_id));
  }
  if (d.kind == BlobDescription::Kind::kPart) {
    COFFRE_RETURN_IF_ERROR(Field(j, "part_number", d.part_number));
    COFFRE_RETURN_IF_ERROR(CheckPartNumber(d.part_number));
  }
  if (d.kind == BlobDescription::Kind::kManifest) {
    auto it = j.find("parts");
    if (it == j.end() || !it->is_array() || it->empty()) {
      return Status::Corruption("blob description of a manifest lacks its parts");
    }
    for (const json& p : *it) {
      COFFRE_ASSIGN_OR_RETURN(ObjectPart part, PartFromJson(p));
      d.parts.push_back(std::move(part));
    }
  }
  return d;
}

}  // namespace coffre::catalog
