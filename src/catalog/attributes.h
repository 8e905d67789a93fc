#pragma once

// Attributes are stored as JSON text: an object of strings. Attributes are opaque and may hold
// bytes that are not UTF-8 (a header value sent in Latin-1), which JSON strings cannot carry, so
// such a map is stored whole as {"$b64": [[key, value], ...]} with each string base64-encoded.
// The two forms cannot be confused: the plain form never holds an array.

#include <string>
#include <string_view>

#include "coffre/catalog/catalog.h"
#include "coffre/common/status.h"

namespace coffre::catalog {

std::string EncodeAttributes(const Attributes& attributes);
// Corruption if the text is not one of the two forms.
Result<Attributes> DecodeAttributes(std::string_view text);

// An Object Lock state, as catalog rows and blob descriptions keep it: '' when empty, else the
// attributes' text form of {"mode", "retain_until" (decimal milliseconds), "legal_hold"}, each
// present only when set. Corruption if the text is not such a form.
std::string EncodeObjectLock(const ObjectLock& lock);
Result<ObjectLock> DecodeObjectLock(std::string_view text);

}  // namespace coffre::catalog
