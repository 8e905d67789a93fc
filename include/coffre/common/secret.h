#pragma once

// Key material lives only in SecretBytes: the buffer is locked in memory where the
// system allows (sodium_mlock) and wiped on destruction (sodium_memzero). Raw access
// goes through the explicitly named Reveal(), so every use of key bytes can be found
// with grep, as with Tink's RestrictedData.

#include <cstddef>
#include <cstdint>
#include <span>

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

}  // namespace coffre
