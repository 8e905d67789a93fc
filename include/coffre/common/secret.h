#pragma once

// Key material lives only in SecretBytes: the buffer is locked in memory where the
// system allows (mlock), kept out of core dumps (MADV_DONTDUMP: secrets up to 64 bytes share
// locked arena pages, larger ones get whole pages of their own) and wiped on destruction. Raw access
// goes through the explicitly named Reveal(), so every use of key bytes can be found
// with grep, as with Tink's RestrictedData.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace coffre {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);  // zero-filled
  explicit SecretBytes(std::span<const uint8_t> data);
  ~SecretBytes();

  SecretBytes(const SecretBytes& other);
  SecretBytes& operator=(const SecretBytes& other);
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;

  // A fresh random secret of `size` bytes.
  static SecretBytes Random(size_t size);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  std::span<const uint8_t> Reveal() const { return {data_, size_}; }
  std::span<uint8_t> RevealMutable() { return {data_, size_}; }

 private:
  void Allocate(size_t size);
  void Release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Zeroes a std::string's characters and empties it: for a secret that must be handed out as text
// (a new access key's secret, a new admin token) once the text is no longer needed.
void WipeString(std::string& s);

}  // namespace coffre
