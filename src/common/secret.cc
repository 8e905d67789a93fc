#include "coffre/common/secret.h"

#include <sanitizer/asan_interface.h>  // the poisoning macros are no-ops outside ASan builds
#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace coffre {
namespace {

// Small secrets (keys, HMAC chain values, access-key secrets: 16 to 64 bytes) come from an arena
// of locked pages instead of one heap buffer each. Locking and unlocking every buffer cost two
// system calls per copy of a key (mlock/munlock, plus madvise inside libsodium), about a fifth of
// the CPU of a small GET; the arena locks each 64 KiB chunk once, keeps it out of core dumps,
// and reuses its slots. Slots are wiped when released, exactly as heap buffers were. Larger
// secrets (rare: passphrases, wrapped blobs) keep the per-buffer path. Under ASan, free slots and
// the unused tail of a slot are poisoned, so an overflow or a use after release is still caught.
class SecretArena {
 public:
  static constexpr size_t kSlotSize = 64;
  static constexpr size_t kChunkSize = 64 * 1024;

  static SecretArena& Get() {
    // Never destroyed: SecretBytes held by other static objects may be released at exit, after
    // any destructor of ours would have run.
    static SecretArena* arena = new SecretArena();
    return *arena;
  }

  // A zeroed slot with room for `size` (<= kSlotSize) bytes, or nullptr when memory is exhausted.
  uint8_t* Take(size_t size) {
    uint8_t* slot = nullptr;
    {
      std::lock_guard lock(mu_);
      if (free_.empty() && !Grow()) {
        return nullptr;
      }
      slot = free_.back();
      free_.pop_back();
    }
    ASAN_UNPOISON_MEMORY_REGION(slot, size);
    return slot;
  }

  // `slot` must come from Take(); it is wiped before anyone can take it again.
  void Give(uint8_t* slot) {
    ASAN_UNPOISON_MEMORY_REGION(slot, kSlotSize);
    sodium_memzero(slot, kSlotSize);
    ASAN_POISON_MEMORY_REGION(slot, kSlotSize);
    std::lock_guard lock(mu_);
    free_.push_back(slot);
  }

 private:
  // Caller holds mu_.
  bool Grow() {
    void* chunk = ::mmap(nullptr, kChunkSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) {
      return false;
    }
    // Best effort, as before: RLIMIT_MEMLOCK may refuse the lock; the slots are still wiped.
    (void)::mlock(chunk, kChunkSize);
#ifdef MADV_DONTDUMP
    (void)::madvise(chunk, kChunkSize, MADV_DONTDUMP);
#endif
    auto* base = static_cast<uint8_t*>(chunk);
    ASAN_POISON_MEMORY_REGION(base, kChunkSize);
    free_.reserve(free_.size() + kChunkSize / kSlotSize);
    // Handed out from the chunk's start: the most recently used slots stay warm in cache.
    for (size_t off = kChunkSize; off >= kSlotSize; off -= kSlotSize) {
      free_.push_back(base + off - kSlotSize);
    }
    return true;
  }

  std::mutex mu_;
  std::vector<uint8_t*> free_;  // guarded by mu_
};

bool FitsArena(size_t size) { return size > 0 && size <= SecretArena::kSlotSize; }

size_t PageSize() {
  static const size_t page = [] {
    const long n = ::sysconf(_SC_PAGESIZE);
    return n > 0 ? static_cast<size_t>(n) : size_t{4096};
  }();
  return page;
}

// Larger secrets get pages of their own: madvise works on whole pages only, so a heap buffer
// could not be kept out of core dumps without also hiding (or failing on) its neighbours.
size_t MappedSize(size_t size) { return (size + PageSize() - 1) / PageSize() * PageSize(); }

}  // namespace

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
  if (FitsArena(size)) {
    data_ = SecretArena::Get().Take(size);
    if (data_ == nullptr) {
      throw std::bad_alloc();
    }
    // Slots are wiped on release, and fresh chunks are zero pages: the buffer starts zeroed.
    return;
  }
  const size_t mapped = MappedSize(size);
  void* pages = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pages == MAP_FAILED) {
    size_ = 0;
    throw std::bad_alloc();
  }
  // Best effort: RLIMIT_MEMLOCK may refuse; the buffer is still wiped on release.
  (void)::mlock(pages, mapped);
#ifdef MADV_DONTDUMP
  (void)::madvise(pages, mapped, MADV_DONTDUMP);
#endif
  data_ = static_cast<uint8_t*>(pages);  // fresh anonymous pages are zeroed
}

void SecretBytes::Release() {
  if (data_ != nullptr) {
    if (FitsArena(size_)) {
      SecretArena::Get().Give(data_);
    } else {
      const size_t mapped = MappedSize(size_);
      sodium_memzero(data_, mapped);
      (void)::munlock(data_, mapped);
      (void)::munmap(data_, mapped);
    }
  }
  data_ = nullptr;
  size_ = 0;
}

void WipeString(std::string& s) {
  if (!s.empty()) {
    sodium_memzero(s.data(), s.size());
  }
  s.clear();
}

}  // namespace coffre
