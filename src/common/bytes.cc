#include "coffre/common/bytes.h"

#include <sodium.h>

#include <stdexcept>

namespace coffre {
namespace {

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) {
      throw std::runtime_error("libsodium initialisation failed");
    }
  }
};

void EnsureSodium() { static const SodiumInit init; }

}  // namespace

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

namespace {

// Digits-only decimal; on overflow, nullopt or 2^64-1 as `saturate` says.
std::optional<uint64_t> ParseDigits(std::string_view s, bool saturate) {
  if (s.empty()) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) {
      if (!saturate) {
        return std::nullopt;
      }
      v = UINT64_MAX;
    } else {
      v = v * 10 + digit;
    }
  }
  return v;
}

}  // namespace

std::optional<uint64_t> ParseDecimal(std::string_view s) { return ParseDigits(s, /*saturate=*/false); }

std::optional<uint64_t> ParseDecimalSaturating(std::string_view s) { return ParseDigits(s, /*saturate=*/true); }

void HexEncodeInto(ByteView data, std::span<uint8_t> out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = static_cast<uint8_t>(kDigits[data[i] >> 4]);
    out[2 * i + 1] = static_cast<uint8_t>(kDigits[data[i] & 0xf]);
  }
}

std::string HexEncode(ByteView data) {
  std::string out(data.size() * 2, '\0');
  HexEncodeInto(data, {reinterpret_cast<uint8_t*>(out.data()), out.size()});
  return out;
}

bool HexDecodeInto(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != 2 * out.size()) {
    return false;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexDigitValue(hex[2 * i]);
    const int lo = HexDigitValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::optional<Bytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  Bytes out(hex.size() / 2);
  if (!HexDecodeInto(hex, out)) {
    return std::nullopt;
  }
  return out;
}

bool IsHex(std::string_view text) {
  for (char c : text) {
    if (HexDigitValue(c) < 0) {
      return false;
    }
  }
  return true;
}

std::string Base64Encode(ByteView data) {
  EnsureSodium();
  const size_t len = sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(len, '\0');
  sodium_bin2base64(out.data(), len, data.data(), data.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(len - 1);  // drop the terminating NUL
  return out;
}

std::optional<Bytes> Base64Decode(std::string_view b64) {
  EnsureSodium();
  Bytes out(b64.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

void PutBigEndian32(uint8_t* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

void PutBigEndian64(uint8_t* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint32_t GetBigEndian32(const uint8_t* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v = v << 8 | in[i];
  }
  return v;
}

uint64_t GetBigEndian64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = v << 8 | in[i];
  }
  return v;
}

bool ConstantTimeEquals(ByteView a, ByteView b) {
  EnsureSodium();
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void RandomFill(std::span<uint8_t> out) {
  EnsureSodium();
  randombytes_buf(out.data(), out.size());
}

std::string RandomId(size_t bytes) {
  Bytes raw(bytes);
  RandomFill(raw);
  return HexEncode(raw);
}

}  // namespace coffre
