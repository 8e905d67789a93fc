#include "coffre/common/secret.h"

#include <sodium.h>

#include <cstring>
#include <new>
#include <utility>

namespace coffre {

SecretBytes::SecretBytes(size_t size) { Allocate(size); }

SecretBytes::SecretBytes(std::span<const uint8_t> data) {
  Allocate(data.size());
  if (!data.empty()) {
    std::memcpy(data_, data.data(), data.size());
  }
}

SecretBytes::~SecretBytes() { Release(); }

SecretBytes::SecretBytes(const SecretBytes& other) : SecretBytes(other.Reveal()) {}

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
  if (this != &other) {
    SecretBytes copy(other);
    *this = std::move(copy);
  }
  return *this;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes SecretBytes::Random(size_t size) {
  SecretBytes s(size);
  if (sodium_init() < 0) {
    throw std::bad_alloc();
  }
  randombytes_buf(s.data_, size);
  return s;
}

void SecretBytes::Allocate(size_t size) {
  size_ = size;
  if (size == 0) {
    return;
  }
  data_ = new uint8_t[size]();
  // Best effort: RLIMIT_MEMLOCK may refuse; the buffer is still wiped on release.
  (void)sodium_mlock(data_, size);
}

void SecretBytes::Release() {
  if (data_ != nullptr) {
    sodium_munlock(data_, size_);  // also zeroes the buffer
    sodium_memzero(data_, size_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
}

}  // namespace coffre
