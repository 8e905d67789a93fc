// The local blob store (coffre/storage/blob_store.h): blobs on one file system, under a root
// directory (the daemon's data directory). A blob whose size is known to be small (at most
// max_packed_blob) goes to a record of an append-only pack file, packs/<n>.pack: a 64-byte header,
// then the blob, at a 4 KiB-aligned offset that the blob's id names, so no index is needed; a
// removed record is punched out. Any other blob gets a file, written in tmp/ and renamed to
// blobs/<id[0:2]>/<id[2:4]>/<id>. A blob is durable when Commit returns: a record after an
// fdatasync of its pack, a file after its own fsync and its directory's. A pack's flush, and a
// directory's, is shared by every commit waiting for it at the time, so that small PUTs
// committing together pay for one device flush rather than one each.
//
// The store knows bytes and ids only: blobs are encrypted and authenticated above it
// (crypto/blob_format.h), and which blobs are live is the catalog's business (the service removes
// garbage, fsck removes orphans). Byte layout of pack records and blob ids, how a record is found
// and what a crash leaves: docs/FORMAT.md, "Local blob store".

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/storage/blob_store.h"
#include "storage/blob_id.h"

namespace coffre::storage {
namespace {

// The entries of a directory but "." and "..", each with whether it is a directory.
Result<std::vector<std::pair<std::string, bool>>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    return Status::FromErrno(errno, "open " + path);
  }
  std::vector<std::pair<std::string, bool>> out;
  errno = 0;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") {
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {  // file systems that do not fill d_type
        struct stat st {};
        is_dir = ::lstat((path + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      out.emplace_back(std::move(name), is_dir);
    }
    errno = 0;
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) {
    return Status::FromErrno(err, "read " + path);
  }
  return out;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "mkdir " + path);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "open dir " + path);
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::FromErrno(err, "fsync dir " + path);
  }
  return Status::Ok();
}

Status WriteFully(int fd, uint64_t offset, std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno(errno, "write blob");
    }
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status ReadFully(int fd, uint64_t offset, std::span<uint8_t> out, const char* what) {
  while (!out.empty()) {
    ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno(errno, what);
    }
    if (n == 0) {
      return Status::Corruption("blob shorter than expected");
    }
    out = out.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

uint64_t AlignUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// Pack records. A pack is a file of records, each at a multiple of kPackAlign: a kRecordHeaderSize
// header, then the blob's bytes, then nothing (a hole) up to the capacity it was given. A removed
// record's blocks are punched out, so a pack's disk usage is that of its live records. The id of
// a record's blob names its pack and offset, so finding it needs no index:
//   16 bytes: run-directory prefix (2) and random (14), as a file blob's id
//    4 bytes: pack number, big-endian
//    4 bytes: record offset / kPackAlign, big-endian
// 48 hex digits in all. The header repeats the id, so a record is never taken for another blob's.
constexpr uint64_t kPackAlign = 4096;
constexpr size_t kRecordHeaderSize = 64;
constexpr size_t kPackedIdBytes = 24;
constexpr char kRecordMagic[8] = {'C', 'o', 'f', 'f', 'r', 'e', 'P', 'k'};
constexpr uint32_t kRecordVersion = 1;

using PackedId = std::array<uint8_t, kPackedIdBytes>;

struct PackLocation {
  PackedId id{};
  uint32_t pack = 0;
  uint64_t offset = 0;
};

void PutBe(uint8_t* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) {
    out[i] = static_cast<uint8_t>(v);
  }
}
uint64_t GetBe(const uint8_t* in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v = v << 8 | in[i];
  }
  return v;
}

// Where a pack-shaped id points; a 48-digit id may also name a file (a record's blob that
// outgrew its record), so the record's header decides.
std::optional<PackLocation> PackLocationOf(const std::string& id) {
  if (id.size() != 2 * kPackedIdBytes) {
    return std::nullopt;
  }
  auto raw = HexDecode(id);
  if (!raw || raw->size() != kPackedIdBytes) {
    return std::nullopt;
  }
  PackLocation at;
  std::copy(raw->begin(), raw->end(), at.id.begin());
  at.pack = static_cast<uint32_t>(GetBe(at.id.data() + 16, 4));
  at.offset = GetBe(at.id.data() + 20, 4) * kPackAlign;
  return at;
}

//   0  8  magic "CoffrePk"
//   8  4  version (1)
//  12  4  check: FNV-1a (32 bits) of the 64 header bytes with these four zero, so that a damaged
//         header is no record, rather than one whose capacity reaches into its neighbours
//  16  8  capacity: bytes from the record's start to the next record's earliest start
//  24  8  blob length
//  32  8  written, seconds since the epoch (fsck's --min-age)
//  40 24  the blob's id, raw
struct RecordHeader {
  uint64_t capacity = 0;
  uint64_t length = 0;
  int64_t written_unix = 0;
  PackedId id{};
};

uint32_t HeaderCheck(const uint8_t* header) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < kRecordHeaderSize; ++i) {
    h = (h ^ (i >= 12 && i < 16 ? 0 : header[i])) * 16777619u;
  }
  return h;
}

void EncodeRecordHeader(const RecordHeader& h, uint8_t* out) {
  std::memset(out, 0, kRecordHeaderSize);
  std::memcpy(out, kRecordMagic, sizeof kRecordMagic);
  PutBe(out + 8, kRecordVersion, 4);
  PutBe(out + 16, h.capacity, 8);
  PutBe(out + 24, h.length, 8);
  PutBe(out + 32, static_cast<uint64_t>(h.written_unix), 8);
  std::memcpy(out + 40, h.id.data(), kPackedIdBytes);
  PutBe(out + 12, HeaderCheck(out), 4);
}

// A header that holds together: its record fits its capacity, and its id names `at` in `pack`.
std::optional<RecordHeader> DecodeRecordHeader(const uint8_t* in, uint32_t pack, uint64_t at) {
  if (std::memcmp(in, kRecordMagic, sizeof kRecordMagic) != 0 || GetBe(in + 8, 4) != kRecordVersion ||
      GetBe(in + 12, 4) != HeaderCheck(in)) {
    return std::nullopt;
  }
  RecordHeader h;
  h.capacity = GetBe(in + 16, 8);
  h.length = GetBe(in + 24, 8);
  h.written_unix = static_cast<int64_t>(GetBe(in + 32, 8));
  std::memcpy(h.id.data(), in + 40, kPackedIdBytes);
  if (h.capacity == 0 || h.capacity % kPackAlign != 0 || h.length > h.capacity - kRecordHeaderSize ||
      GetBe(h.id.data() + 16, 4) != pack || GetBe(h.id.data() + 20, 4) * kPackAlign != at) {
    return std::nullopt;
  }
  return h;
}

std::string PackFileName(uint32_t number) {
  uint8_t be[4];
  PutBe(be, number, 4);
  return HexEncode(be) + ".pack";
}

std::optional<uint32_t> PackNumberOf(const std::string& file_name) {
  if (file_name.size() != 13 || file_name.compare(8, 5, ".pack") != 0) {
    return std::nullopt;
  }
  auto raw = HexDecode(std::string_view(file_name).substr(0, 8));
  if (!raw || HexEncode(*raw) != file_name.substr(0, 8)) {  // lower case only, as written
    return std::nullopt;
  }
  return static_cast<uint32_t>(GetBe(raw->data(), 4));
}

// One open pack file, shared by its writers and readers; closed when the last of them is done.
struct Pack {
  Pack(uint32_t n, std::string p, int f) : number(n), path(std::move(p)), fd(f) {}
  ~Pack() { ::close(fd); }
  Pack(const Pack&) = delete;
  Pack& operator=(const Pack&) = delete;
  const uint32_t number;
  const std::string path;
  const int fd;
};

Status PunchOut(const Pack& pack, uint64_t offset, uint64_t length) {
  if (::fallocate(pack.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return Status::FromErrno(errno, "punch record out of " + pack.path);
  }
  return Status::Ok();
}

// The header of the record that starts at `at`; nullopt where none does (a hole, other bytes, the
// pack's end).
Result<std::optional<RecordHeader>> ReadRecordHeader(const Pack& pack, uint64_t at) {
  uint8_t raw[kRecordHeaderSize];
  Status read = ReadFully(pack.fd, at, raw, "read pack record");
  if (read.code() == StatusCode::kCorruption) {
    return std::optional<RecordHeader>();  // past the pack's end
  }
  COFFRE_RETURN_IF_ERROR(read);
  return DecodeRecordHeader(raw, pack.number, at);
}

// Pack bytes where a record should start but none does, named for fsck as
// "<pack path> bytes <from>..<to>"; RemoveStray takes the name back.
struct StrayBytes {
  std::string pack_path;
  uint64_t from = 0;
  uint64_t to = 0;
};

std::string StrayBytesName(const std::string& pack_path, uint64_t from, uint64_t to) {
  return pack_path + " bytes " + std::to_string(from) + ".." + std::to_string(to);
}

std::optional<StrayBytes> ParseStrayBytesName(const std::string& name) {
  const size_t bytes_at = name.find(" bytes ");
  if (bytes_at == std::string::npos) {
    return std::nullopt;
  }
  const size_t dots = name.find("..", bytes_at);
  auto decimal = [](const std::string& t) -> std::optional<uint64_t> {
    if (t.empty() || t.size() > 18 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    return std::stoull(t);
  };
  const size_t from_at = bytes_at + 7;
  const auto from = dots == std::string::npos ? std::nullopt : decimal(name.substr(from_at, dots - from_at));
  const auto to = dots == std::string::npos ? std::nullopt : decimal(name.substr(dots + 2));
  if (!from || !to || *from >= *to) {
    return std::nullopt;
  }
  return StrayBytes{name.substr(0, bytes_at), *from, *to};
}

class LocalBlobStore;

class LocalBlobWriter final : public BlobWriter {
 public:
  LocalBlobWriter(std::string id, int fd, std::string tmp_path, std::string final_dir, std::string final_path,
                  LocalBlobStore* store)
      : id_(std::move(id)),
        fd_(fd),
        tmp_path_(std::move(tmp_path)),
        final_dir_(std::move(final_dir)),
        final_path_(std::move(final_path)),
        store_(store) {}
  ~LocalBlobWriter() override {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (!committed_) {
      ::unlink(tmp_path_.c_str());
    }
  }

  Status Append(std::span<const uint8_t> data) override {
    COFFRE_RETURN_IF_ERROR(WriteFully(fd_, size_, data));
    size_ += data.size();
    StartWriteback();
    return Status::Ok();
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    COFFRE_RETURN_IF_ERROR(WriteFully(fd_, offset, data));
    size_ = std::max(size_, offset + data.size());
    return Status::Ok();
  }

  uint64_t size() const override { return size_; }
  const std::string& id() const override { return id_; }

  Status Commit() override;

 private:
  // A large blob's pages start for the disk as they are appended, a MiB at a time, so that
  // Commit's fsync waits for the last MiB rather than the whole file (64 MiB: ~29 ms of fsync
  // here, in series with the response). It waits for nothing itself; a page that fails to be
  // written is still reported by that fsync, since only the waiting forms of sync_file_range
  // consume a writeback error.
  void StartWriteback() {
    if (size_ - written_back_ >= kWritebackStep) {
      (void)::sync_file_range(fd_, static_cast<off_t>(written_back_), static_cast<off_t>(size_ - written_back_),
                              SYNC_FILE_RANGE_WRITE);
      written_back_ = size_;
    }
  }
  static constexpr uint64_t kWritebackStep = 1 << 20;

  std::string id_;
  int fd_;
  std::string tmp_path_;
  std::string final_dir_;
  std::string final_path_;
  LocalBlobStore* store_;
  uint64_t size_ = 0;
  uint64_t written_back_ = 0;  // writeback started for [0, written_back_)
  bool committed_ = false;
};

class LocalBlobReader final : public BlobReader {
 public:
  LocalBlobReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~LocalBlobReader() override { ::close(fd_); }

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (offset + out.size() > size_) {
      return Status::Corruption("blob shorter than expected");
    }
    return ReadFully(fd_, offset, out, "read blob");
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  uint64_t size_;
};

// A blob in a pack record: its bytes start kRecordHeaderSize after the record.
class PackedBlobReader final : public BlobReader {
 public:
  PackedBlobReader(std::shared_ptr<const Pack> pack, uint64_t start, uint64_t size)
      : pack_(std::move(pack)), start_(start), size_(size) {}

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (offset + out.size() > size_) {
      return Status::Corruption("blob shorter than expected");
    }
    return ReadFully(pack_->fd, start_ + offset, out, "read packed blob");
  }
  uint64_t size() const override { return size_; }

 private:
  std::shared_ptr<const Pack> pack_;
  uint64_t start_;
  uint64_t size_;
};

// Holds a small blob in memory, then writes it to its record with its header in one write at
// Commit. Should the blob outgrow the record, it moves to a file of its own under the same id,
// and the record stays a hole.
class PackedBlobWriter final : public BlobWriter {
 public:
  PackedBlobWriter(const PackedId& raw_id, std::shared_ptr<const Pack> pack, uint64_t offset, uint64_t capacity,
                   LocalBlobStore* store)
      : raw_id_(raw_id),
        id_(HexEncode(raw_id)),
        pack_(std::move(pack)),
        offset_(offset),
        capacity_(capacity),
        store_(store) {
    record_.reserve(capacity_);
    record_.resize(kRecordHeaderSize);
  }

  const std::string& id() const override { return id_; }
  uint64_t size() const override { return spilled_ ? spilled_->size() : record_.size() - kRecordHeaderSize; }

  Status Append(std::span<const uint8_t> data) override {
    if (!spilled_ && record_.size() + data.size() > capacity_) {
      COFFRE_RETURN_IF_ERROR(Spill());
    }
    if (spilled_) {
      return spilled_->Append(data);
    }
    record_.insert(record_.end(), data.begin(), data.end());
    return Status::Ok();
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (!spilled_ && kRecordHeaderSize + offset + data.size() > capacity_) {
      COFFRE_RETURN_IF_ERROR(Spill());
    }
    if (spilled_) {
      return spilled_->WriteAt(offset, data);
    }
    const size_t at = kRecordHeaderSize + static_cast<size_t>(offset);
    if (record_.size() < at + data.size()) {
      record_.resize(at + data.size(), 0);
    }
    std::copy(data.begin(), data.end(), record_.begin() + static_cast<std::ptrdiff_t>(at));
    return Status::Ok();
  }

  Status Commit() override;

 private:
  Status Spill();

  PackedId raw_id_;
  std::string id_;
  std::shared_ptr<const Pack> pack_;
  uint64_t offset_;
  uint64_t capacity_;
  LocalBlobStore* store_;
  Bytes record_;  // header (filled at Commit), then the blob
  std::unique_ptr<BlobWriter> spilled_;
  bool committed_ = false;
};

class LocalBlobStore final : public BlobStore {
 public:
  LocalBlobStore(std::string root, LocalBlobStoreOptions options)
      : root_(std::move(root)),
        blobs_(root_ + "/blobs"),
        packs_dir_(root_ + "/packs"),
        tmp_(root_ + "/tmp"),
        sync_dir_(options.sync_dir ? std::move(options.sync_dir) : FsyncDir),
        sync_pack_(options.sync_pack ? std::move(options.sync_pack) : FdatasyncPack),
        max_packed_blob_(options.max_packed_blob),
        // An id holds a record's offset in 4 KiB units in 32 bits.
        pack_size_limit_(std::min(options.pack_size_limit, uint64_t{1} << 43)) {
    uint8_t start[2];
    RandomFill(start);
    first_dir_ = static_cast<uint32_t>(start[0]) << 8 | start[1];
  }

  Status Init() {
    COFFRE_RETURN_IF_ERROR(MakeDir(root_));
    COFFRE_RETURN_IF_ERROR(MakeDir(blobs_));
    COFFRE_RETURN_IF_ERROR(MakeDir(packs_dir_));
    COFFRE_RETURN_IF_ERROR(MakeDir(tmp_));
    if (max_packed_blob_ == 0) {
      return Status::Ok();
    }
    // New records go to the last pack, after its last written byte: a record reserved past it by
    // an earlier process was never written, so nothing names it.
    COFFRE_ASSIGN_OR_RETURN(auto numbers, PackNumbers());
    std::shared_ptr<const Pack> last;
    if (numbers.empty()) {
      COFFRE_ASSIGN_OR_RETURN(last, CreatePack(0));
    } else {
      COFFRE_ASSIGN_OR_RETURN(last, FindPack(numbers.back()));
      if (last == nullptr) {
        return Status::Internal("pack " + PackFileName(numbers.back()) + " vanished");
      }
    }
    struct stat st {};
    if (::fstat(last->fd, &st) != 0) {
      return Status::FromErrno(errno, "stat " + last->path);
    }
    // Packing needs holes: without them a removed record's space would never come back. The probe
    // punches past the end of the pack, where nothing is.
    const uint64_t end = AlignUp(static_cast<uint64_t>(st.st_size), kPackAlign);
    const uint64_t probe = end + pack_size_limit_;
    if (::fallocate(last->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(probe),
                    static_cast<off_t>(kPackAlign)) != 0) {
      if (errno == EOPNOTSUPP) {
        return Status::Ok();  // every blob gets a file; packs already there stay readable
      }
      return Status::FromErrno(errno, "punch a hole in " + last->path);
    }
    std::lock_guard lock(reserve_mu_);
    current_ = std::move(last);
    current_end_ = end;
    packing_ = true;
    return Status::Ok();
  }

  Result<std::unique_ptr<BlobWriter>> CreateBlob(std::optional<uint64_t> expected_size) override {
    PackedId id{};
    NewIdBytes(std::span<uint8_t>(id).first(16));
    if (!packing_ || !expected_size || *expected_size > max_packed_blob_) {
      return Create(HexEncode(std::span<const uint8_t>(id).first(16)), expected_size);
    }
    const uint64_t capacity = AlignUp(kRecordHeaderSize + *expected_size, kPackAlign);
    std::shared_ptr<const Pack> pack;
    uint64_t offset = 0;
    {
      std::lock_guard lock(reserve_mu_);
      if (current_end_ > 0 && current_end_ + capacity > pack_size_limit_) {
        COFFRE_ASSIGN_OR_RETURN(current_, CreatePack(current_->number + 1));
        current_end_ = 0;
      }
      pack = current_;
      offset = current_end_;
      current_end_ += capacity;
    }
    PutBe(id.data() + 16, pack->number, 4);
    PutBe(id.data() + 20, offset / kPackAlign, 4);
    return std::unique_ptr<BlobWriter>(new PackedBlobWriter(id, std::move(pack), offset, capacity, this));
  }

  uint64_t MaxPackedBlob() const override { return packing_ ? max_packed_blob_ : 0; }

  Result<std::unique_ptr<BlobWriter>> Create(const std::string& blob_id,
                                             std::optional<uint64_t> /*expected_size*/) override {
    if (!IsValidBlobId(blob_id)) {
      return Status::InvalidArgument("invalid blob id");
    }
    std::string tmp_path = tmp_ + "/" + blob_id + ".tmp";
    int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::FromErrno(errno, "create temporary blob");
    }
    std::string dir = blobs_ + "/" + blob_id.substr(0, 2) + "/" + blob_id.substr(2, 2);
    std::string final_path = dir + "/" + blob_id;
    return std::unique_ptr<BlobWriter>(
        new LocalBlobWriter(blob_id, fd, std::move(tmp_path), std::move(dir), std::move(final_path), this));
  }

  Result<std::unique_ptr<BlobReader>> Open(const std::string& blob_id) const override {
    if (!IsValidBlobId(blob_id)) {
      return Status::InvalidArgument("invalid blob id");
    }
    COFFRE_ASSIGN_OR_RETURN(auto record, FindRecord(blob_id));
    if (record.pack != nullptr) {
      return std::unique_ptr<BlobReader>(
          new PackedBlobReader(std::move(record.pack), record.offset + kRecordHeaderSize, record.header.length));
    }
    std::string path = PathOf(blob_id);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return Status::FromErrno(errno, "open blob " + blob_id);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "stat blob " + blob_id);
    }
    return std::unique_ptr<BlobReader>(new LocalBlobReader(fd, static_cast<uint64_t>(st.st_size)));
  }

  Status Remove(const std::string& blob_id) override {
    if (!IsValidBlobId(blob_id)) {
      return Status::InvalidArgument("invalid blob id");
    }
    COFFRE_ASSIGN_OR_RETURN(auto record, FindRecord(blob_id));
    if (record.pack != nullptr) {
      return PunchOut(*record.pack, record.offset, record.header.capacity);
    }
    if (::unlink(PathOf(blob_id).c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "remove blob " + blob_id);
    }
    return Status::Ok();
  }

  Result<uint64_t> RemoveTemporaries() override {
    DIR* dir = ::opendir(tmp_.c_str());
    if (dir == nullptr) {
      return Status::FromErrno(errno, "open " + tmp_);
    }
    uint64_t removed = 0;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") {
        continue;
      }
      if (::unlink((tmp_ + "/" + name).c_str()) == 0) {
        ++removed;
      }
    }
    ::closedir(dir);
    return removed;
  }

  Result<std::vector<StoredFile>> ListBlobs(std::vector<std::string>* strays) const override {
    std::vector<StoredFile> out;
    // blobs/<id[0:2]>/<id[2:4]>/<id>
    COFFRE_ASSIGN_OR_RETURN(auto level1, ListDir(blobs_));
    for (const auto& [d1, is_dir1] : level1) {
      const std::string p1 = blobs_ + "/" + d1;
      if (!is_dir1) {
        if (strays != nullptr) {
          strays->push_back(p1);
        }
        continue;
      }
      COFFRE_ASSIGN_OR_RETURN(auto level2, ListDir(p1));
      for (const auto& [d2, is_dir2] : level2) {
        const std::string p2 = p1 + "/" + d2;
        if (!is_dir2) {
          if (strays != nullptr) {
            strays->push_back(p2);
          }
          continue;
        }
        COFFRE_ASSIGN_OR_RETURN(auto files, ListDir(p2));
        for (const auto& [name, is_dir] : files) {
          const std::string path = p2 + "/" + name;
          struct stat st {};
          if (is_dir || !IsValidBlobId(name) || name.compare(0, 2, d1) != 0 || name.compare(2, 2, d2) != 0 ||
              ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            if (strays != nullptr) {
              strays->push_back(path);
            }
            continue;
          }
          out.push_back(StoredFile{name, static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtime)});
        }
      }
    }
    COFFRE_ASSIGN_OR_RETURN(auto packs, ListDir(packs_dir_));
    for (const auto& [name, is_dir] : packs) {
      auto number = PackNumberOf(name);
      std::shared_ptr<const Pack> pack;
      if (number && !is_dir) {
        COFFRE_ASSIGN_OR_RETURN(pack, FindPack(*number));
      }
      if (pack == nullptr) {
        if (strays != nullptr) {
          strays->push_back(packs_dir_ + "/" + name);
        }
        continue;
      }
      COFFRE_RETURN_IF_ERROR(ListRecords(*pack, &out, strays));
    }
    return out;
  }

  Status RemoveStray(const std::string& stray) override {
    const auto bytes = ParseStrayBytesName(stray);
    const std::string prefix = packs_dir_ + "/";
    const auto number = bytes && bytes->pack_path.compare(0, prefix.size(), prefix) == 0
                            ? PackNumberOf(bytes->pack_path.substr(prefix.size()))
                            : std::nullopt;
    if (!number || bytes->from % kPackAlign != 0 || bytes->to % kPackAlign != 0) {
      return Status::InvalidArgument("not stray pack bytes: " + stray);
    }
    COFFRE_ASSIGN_OR_RETURN(auto pack, FindPack(*number));
    if (pack == nullptr) {
      return Status::NotFound("no pack for " + stray);
    }
    for (uint64_t at = bytes->from; at < bytes->to; at += kPackAlign) {
      COFFRE_ASSIGN_OR_RETURN(auto header, ReadRecordHeader(*pack, at));
      if (header) {
        return Status::FailedPrecondition("a record starts inside " + stray);
      }
    }
    return PunchOut(*pack, bytes->from, bytes->to - bytes->from);
  }

  Result<std::vector<StoredFile>> ListTemporaries() const override {
    COFFRE_ASSIGN_OR_RETURN(auto names, ListDir(tmp_));
    std::vector<StoredFile> out;
    for (const auto& [name, is_dir] : names) {
      struct stat st {};
      if (::lstat((tmp_ + "/" + name).c_str(), &st) != 0) {
        continue;  // finished meanwhile
      }
      out.push_back(StoredFile{name, static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtime)});
    }
    return out;
  }

  Status RemoveTemporary(const std::string& name) override {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      return Status::InvalidArgument("invalid temporary name");
    }
    if (::unlink((tmp_ + "/" + name).c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "remove temporary " + name);
    }
    return Status::Ok();
  }

  // Creates the two fan-out directory levels once; fsyncs their parents when new, so the rename
  // target's path is itself durable. A directory is created under its own stripe's lock, not one
  // store-wide lock: the parent's fsync would otherwise queue every concurrent commit behind it,
  // and a writer that finds the directory must not use it before its creator's fsync is done.
  Status EnsureDir(const std::string& dir) {
    if (IsKnownDir(dir)) {
      return Status::Ok();
    }
    const std::string parent = dir.substr(0, dir.rfind('/'));
    COFFRE_RETURN_IF_ERROR(CreateDirDurably(parent, blobs_));
    return CreateDirDurably(dir, parent);
  }

  // Makes the caller's rename into `dir` durable, with an fsync shared as SharedFlush shares it.
  Status SyncDir(const std::string& dir) {
    return SharedFlush(dir, [&] { return sync_dir_(dir); });
  }

  // Writes a record (its header already in place) and makes it durable with an fdatasync of its
  // pack shared as SharedFlush shares it. If that fails, the record is punched out again: nothing
  // will name it.
  Status CommitRecord(const Pack& pack, uint64_t offset, std::span<const uint8_t> record) {
    Status st = WriteFully(pack.fd, offset, record);
    if (st.ok()) {
      st = SharedFlush(pack.path, [&] { return sync_pack_(pack.fd); });
    }
    if (!st.ok()) {
      (void)PunchOut(pack, offset, AlignUp(record.size(), kPackAlign));
    }
    return st;
  }

 private:
  // Makes a caller's earlier writes to `key` (a directory, a pack) durable by `flush`. Callers
  // that come while a flush of the same key is under way share the next one: the first caller
  // to find none running runs it, the others wait for it. A failed flush is reported to every
  // caller it was meant to cover. Each waiting caller is woken once: when a flush covered it, or
  // to run the next flush; waking all of them at each flush would make most sleep again.
  Status SharedFlush(const std::string& key, const std::function<Status()>& flush) {
    std::unique_lock lock(sync_mu_);
    FlushGroup& s = flushes_[key];
    ++s.callers;
    // A flush already running may have started before the caller's write: only the next covers it.
    const uint64_t needed = s.started + 1;
    std::vector<std::shared_ptr<FlushWaiter>> to_wake;
    std::shared_ptr<FlushWaiter> me;  // made on the first wait, and kept if woken to lead in vain
    while (s.finished < needed) {
      if (s.running) {
        if (!me) {
          me = std::make_shared<FlushWaiter>();
          me->needed = needed;
        }
        s.waiting.push_back(me);
        me->wake.wait(lock);
        std::erase(s.waiting, me);
        continue;
      }
      s.running = true;
      const uint64_t generation = ++s.started;
      lock.unlock();
      Status st = flush();
      lock.lock();
      s.running = false;
      s.finished = generation;
      if (!st.ok()) {
        s.failed = generation;
        s.failure = std::move(st);
      }
      bool next_leader = false;
      for (const auto& w : s.waiting) {
        if (w->needed <= generation || !std::exchange(next_leader, true)) {
          to_wake.push_back(w);
        }
      }
    }
    // A caller that woke late may see a later flush's failure too: it fails, which is safe.
    Status result = s.failed >= needed ? s.failure : Status::Ok();
    if (--s.callers == 0) {
      flushes_.erase(key);
    }
    lock.unlock();
    // Outside the lock, so that the woken do not block on it at once; each waiter is shared, so
    // its condition variable outlives a waiter that has already returned.
    for (const auto& w : to_wake) {
      w->wake.notify_one();
    }
    return result;
  }

  static Status FdatasyncPack(int fd) {
    if (::fdatasync(fd) != 0) {
      return Status::FromErrno(errno, "fdatasync pack");
    }
    return Status::Ok();
  }

  // Each run of kIdsPerDirectory ids takes the next of the 65,536 fan-out directories, from a
  // random start, which fills them evenly; files made close together thus share their
  // directory's fsync (SyncDir). The other 14 bytes are random.
  void NewIdBytes(std::span<uint8_t> id) {
    const uint64_t n = ids_made_.fetch_add(1, std::memory_order_relaxed);
    const auto dir = static_cast<uint16_t>(first_dir_ + n / kIdsPerDirectory);
    id[0] = static_cast<uint8_t>(dir >> 8);
    id[1] = static_cast<uint8_t>(dir);
    RandomFill(id.subspan(2));
  }

  std::string PathOf(const std::string& id) const {
    return blobs_ + "/" + id.substr(0, 2) + "/" + id.substr(2, 2) + "/" + id;
  }

  std::string PackPath(uint32_t number) const { return packs_dir_ + "/" + PackFileName(number); }

  Result<std::vector<uint32_t>> PackNumbers() const {
    COFFRE_ASSIGN_OR_RETURN(auto names, ListDir(packs_dir_));
    std::vector<uint32_t> numbers;
    for (const auto& [name, is_dir] : names) {
      if (auto n = PackNumberOf(name); n && !is_dir) {
        numbers.push_back(*n);
      }
    }
    std::sort(numbers.begin(), numbers.end());
    return numbers;
  }

  // A new, empty pack whose name is durable.
  Result<std::shared_ptr<const Pack>> CreatePack(uint32_t number) {
    std::string path = PackPath(number);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::FromErrno(errno, "create " + path);
    }
    auto pack = std::make_shared<const Pack>(number, std::move(path), fd);
    COFFRE_RETURN_IF_ERROR(FsyncDir(packs_dir_));
    std::lock_guard lock(packs_mu_);
    packs_[number] = pack;
    return pack;
  }

  // The pack, opened once and kept open; nullptr if there is no such pack.
  Result<std::shared_ptr<const Pack>> FindPack(uint32_t number) const {
    {
      std::shared_lock lock(packs_mu_);
      if (auto it = packs_.find(number); it != packs_.end()) {
        return it->second;
      }
    }
    std::lock_guard lock(packs_mu_);
    if (auto it = packs_.find(number); it != packs_.end()) {
      return it->second;
    }
    std::string path = PackPath(number);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return std::shared_ptr<const Pack>();
      }
      return Status::FromErrno(errno, "open " + path);
    }
    auto pack = std::make_shared<const Pack>(number, std::move(path), fd);
    packs_[number] = pack;
    return pack;
  }

  struct FoundRecord {
    std::shared_ptr<const Pack> pack;  // nullptr: the id names no record (it may name a file)
    uint64_t offset = 0;
    RecordHeader header;
  };

  // The record that a pack-shaped id names, if its pack holds it.
  Result<FoundRecord> FindRecord(const std::string& id) const {
    auto at = PackLocationOf(id);
    if (!at) {
      return FoundRecord{};
    }
    COFFRE_ASSIGN_OR_RETURN(auto pack, FindPack(at->pack));
    if (pack == nullptr) {
      return FoundRecord{};
    }
    COFFRE_ASSIGN_OR_RETURN(auto header, ReadRecordHeader(*pack, at->offset));
    if (!header || header->id != at->id) {
      return FoundRecord{};  // a hole (removed, never written, or outgrown), or another blob's
    }
    return FoundRecord{std::move(pack), at->offset, *header};
  }

  // The records of one pack, found by skipping its holes. Bytes where a record should start but
  // no valid header is are strays, one range per run of them.
  Status ListRecords(const Pack& pack, std::vector<StoredFile>* out, std::vector<std::string>* strays) const {
    uint64_t pos = 0;
    bool in_stray = false;  // since stray_from
    uint64_t stray_from = 0;
    auto end_stray = [&](uint64_t to) {
      if (in_stray && strays != nullptr) {
        strays->push_back(StrayBytesName(pack.path, stray_from, to));
      }
      in_stray = false;
    };
    for (;;) {
      const off_t data = ::lseek(pack.fd, static_cast<off_t>(pos), SEEK_DATA);
      if (data < 0) {
        if (errno != ENXIO) {
          return Status::FromErrno(errno, "seek " + pack.path);
        }
        end_stray(pos);
        return Status::Ok();
      }
      const uint64_t at = static_cast<uint64_t>(data) / kPackAlign * kPackAlign;
      if (at != pos) {
        end_stray(pos);
      }
      COFFRE_ASSIGN_OR_RETURN(auto header, ReadRecordHeader(pack, at));
      if (!header) {
        if (!in_stray) {
          in_stray = true;
          stray_from = at;
        }
        pos = at + kPackAlign;
        continue;
      }
      end_stray(at);
      out->push_back(StoredFile{HexEncode(header->id), header->length, header->written_unix});
      pos = at + header->capacity;
    }
  }

  struct FlushWaiter {
    uint64_t needed = 0;  // the flush generation that covers it
    std::condition_variable wake;
  };
  struct FlushGroup {
    uint64_t started = 0;   // flushes begun
    uint64_t finished = 0;  // the last one finished
    uint64_t failed = 0;    // the last one that failed, with `failure`
    Status failure;
    bool running = false;
    int callers = 0;  // in SharedFlush for this key; the entry goes when none is left
    std::vector<std::shared_ptr<FlushWaiter>> waiting;
  };

  bool IsKnownDir(const std::string& dir) {
    std::lock_guard lock(known_mu_);
    return known_dirs_.count(dir) != 0;
  }
  std::mutex& StripeOf(const std::string& dir) { return dir_stripes_[std::hash<std::string>{}(dir) % kDirStripes]; }
  // Makes `dir` (in `parent`) exist durably, once per process. A directory already on disk but not
  // known was made by an earlier process: a concurrent writer creating it holds the same stripe.
  Status CreateDirDurably(const std::string& dir, const std::string& parent) {
    std::lock_guard creating(StripeOf(dir));
    if (IsKnownDir(dir)) {
      return Status::Ok();
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      COFFRE_RETURN_IF_ERROR(MakeDir(dir));
      COFFRE_RETURN_IF_ERROR(FsyncDir(parent));
    }
    std::lock_guard lock(known_mu_);
    known_dirs_.insert(dir);
    return Status::Ok();
  }

  std::string root_;
  std::string blobs_;
  std::string packs_dir_;
  std::string tmp_;
  std::function<Status(const std::string&)> sync_dir_;
  std::function<Status(int)> sync_pack_;
  const uint64_t max_packed_blob_;
  const uint64_t pack_size_limit_;
  static constexpr uint64_t kIdsPerDirectory = 64;
  uint32_t first_dir_ = 0;
  std::atomic<uint64_t> ids_made_{0};
  bool packing_ = false;                 // set by Init: packing is on and holes can be punched
  std::mutex reserve_mu_;                // guards the two below
  std::shared_ptr<const Pack> current_;  // takes new records
  uint64_t current_end_ = 0;             // where its next record starts
  mutable std::shared_mutex packs_mu_;
  mutable std::map<uint32_t, std::shared_ptr<const Pack>> packs_;  // opened so far
  std::mutex sync_mu_;
  std::unordered_map<std::string, FlushGroup> flushes_;  // node-based: entries stay put
  static constexpr size_t kDirStripes = 64;
  std::array<std::mutex, kDirStripes> dir_stripes_;
  std::mutex known_mu_;
  std::set<std::string> known_dirs_;
};

Status LocalBlobWriter::Commit() {
  if (committed_ || fd_ < 0) {
    return Status::Internal("blob committed twice");
  }
  if (::fsync(fd_) != 0) {
    return Status::FromErrno(errno, "fsync blob");
  }
  ::close(fd_);
  fd_ = -1;
  COFFRE_RETURN_IF_ERROR(store_->EnsureDir(final_dir_));
  if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
    return Status::FromErrno(errno, "rename blob");
  }
  committed_ = true;
  return store_->SyncDir(final_dir_);
}

Status PackedBlobWriter::Spill() {
  COFFRE_ASSIGN_OR_RETURN(spilled_, store_->Create(id_, std::nullopt));
  return spilled_->Append(std::span<const uint8_t>(record_).subspan(kRecordHeaderSize));
}

Status PackedBlobWriter::Commit() {
  if (spilled_) {
    return spilled_->Commit();
  }
  if (committed_) {
    return Status::Internal("blob committed twice");
  }
  committed_ = true;
  RecordHeader h;
  h.capacity = capacity_;
  h.length = record_.size() - kRecordHeaderSize;
  h.written_unix = static_cast<int64_t>(::time(nullptr));
  h.id = raw_id_;
  EncodeRecordHeader(h, record_.data());
  return store_->CommitRecord(*pack_, offset_, record_);
}

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root, LocalBlobStoreOptions options) {
  auto store = std::make_unique<LocalBlobStore>(root, std::move(options));
  COFFRE_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<BlobStore>(std::move(store));
}

}  // namespace coffre::storage
