#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coffre {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView AsBytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
inline std::string_view AsChars(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// The value of one hex digit (either case), or -1.
int HexDigitValue(char c);

// A non-empty run of ASCII digits that fits in 64 bits, as found in HTTP headers and query
// parameters; nullopt for anything else (signs, spaces, overflow).
std::optional<uint64_t> ParseDecimal(std::string_view s);
// The same digits-only syntax, but a value above 2^64-1 reads as 2^64-1 instead of failing, for
// callers where a huge number is well-formed and must still be answered (an HTTP byte range).
std::optional<uint64_t> ParseDecimalSaturating(std::string_view s);

// Lower-case hex.
std::string HexEncode(ByteView data);
std::optional<Bytes> HexDecode(std::string_view hex);
// Whether every character is a hex digit (either case); true for the empty string.
bool IsHex(std::string_view text);
// The allocation-free forms, for secrets that must stay in caller-owned (locked, wiped) memory:
// HexEncodeInto writes 2 * data.size() lower-case ASCII digits to `out`, which must be that size;
// HexDecodeInto fills `out` from exactly 2 * out.size() digits, false (out partly written) when
// the size is wrong or a character is not a hex digit.
void HexEncodeInto(ByteView data, std::span<uint8_t> out);
[[nodiscard]] bool HexDecodeInto(std::string_view hex, std::span<uint8_t> out);

// Standard base64 with padding (RFC 4648 section 4), as S3 uses for Content-MD5 and checksums.
std::string Base64Encode(ByteView data);
std::optional<Bytes> Base64Decode(std::string_view b64);

// Big-endian fixed-width integer encoding, for on-disk formats.
void PutBigEndian32(uint8_t* out, uint32_t v);
void PutBigEndian64(uint8_t* out, uint64_t v);
uint32_t GetBigEndian32(const uint8_t* in);
uint64_t GetBigEndian64(const uint8_t* in);

// Constant-time equality (libsodium); sizes are not secret.
bool ConstantTimeEquals(ByteView a, ByteView b);

// Cryptographically secure random bytes (libsodium).
void RandomFill(std::span<uint8_t> out);
// A random identifier of `bytes` random bytes, hex encoded; used for opaque names.
std::string RandomId(size_t bytes = 16);

}  // namespace coffre
