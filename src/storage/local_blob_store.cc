#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "coffre/common/bytes.h"
#include "coffre/storage/blob_store.h"

namespace coffre::storage {
namespace {

bool IsValidBlobId(const std::string& id) {
  if (id.size() < 16 || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

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

class LocalBlobStore;

class LocalBlobWriter final : public BlobWriter {
 public:
  LocalBlobWriter(int fd, std::string tmp_path, std::string final_dir, std::string final_path,
                  LocalBlobStore* store)
      : fd_(fd), tmp_path_(std::move(tmp_path)), final_dir_(std::move(final_dir)),
        final_path_(std::move(final_path)), store_(store) {}
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
    while (!out.empty()) {
      ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return Status::FromErrno(errno, "read blob");
      }
      if (n == 0) {
        return Status::Corruption("blob shorter than expected");
      }
      out = out.subspan(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  uint64_t size_;
};

class LocalBlobStore final : public BlobStore {
 public:
  LocalBlobStore(std::string root, LocalBlobStoreOptions options)
      : root_(std::move(root)),
        blobs_(root_ + "/blobs"),
        tmp_(root_ + "/tmp"),
        sync_dir_(options.sync_dir ? std::move(options.sync_dir) : FsyncDir) {
    uint8_t start[2];
    RandomFill(start);
    first_dir_ = static_cast<uint32_t>(start[0]) << 8 | start[1];
  }

  // Ids made close together share their fan-out directory, so that their commits share its fsync
  // (SyncDir): each run of kIdsPerDirectory ids takes the next of the 65,536 directories, from a
  // random start, which fills them evenly. The other 14 bytes are random.
  std::string NewBlobId() override {
    const uint64_t n = ids_made_.fetch_add(1, std::memory_order_relaxed);
    const auto dir = static_cast<uint16_t>(first_dir_ + n / kIdsPerDirectory);
    uint8_t id[16];
    id[0] = static_cast<uint8_t>(dir >> 8);
    id[1] = static_cast<uint8_t>(dir);
    RandomFill(std::span<uint8_t>(id).subspan(2));
    return HexEncode(id);
  }

  Status Init() {
    COFFRE_RETURN_IF_ERROR(MakeDir(root_));
    COFFRE_RETURN_IF_ERROR(MakeDir(blobs_));
    return MakeDir(tmp_);
  }

  Result<std::unique_ptr<BlobWriter>> Create(const std::string& blob_id) override {
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
        new LocalBlobWriter(fd, std::move(tmp_path), std::move(dir), std::move(final_path), this));
  }

  Result<std::unique_ptr<BlobReader>> Open(const std::string& blob_id) const override {
    if (!IsValidBlobId(blob_id)) {
      return Status::InvalidArgument("invalid blob id");
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
    return out;
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

  // Makes the caller's rename into `dir` durable. Renames into one directory that come while its
  // fsync is under way share the next one: the first caller to find none running runs it, the
  // others wait for it. A failed fsync is reported to every caller it was meant to cover.
  Status SyncDir(const std::string& dir) {
    std::unique_lock lock(sync_mu_);
    DirSync& s = dir_syncs_[dir];
    ++s.callers;
    // An fsync already running may have started before the caller's rename: only the next covers it.
    const uint64_t needed = s.started + 1;
    while (s.finished < needed) {
      if (s.running) {
        s.finished_cv.wait(lock);
        continue;
      }
      s.running = true;
      const uint64_t generation = ++s.started;
      lock.unlock();
      Status st = sync_dir_(dir);
      lock.lock();
      s.running = false;
      s.finished = generation;
      if (!st.ok()) {
        s.failed = generation;
        s.failure = std::move(st);
      }
      s.finished_cv.notify_all();
    }
    // A caller that woke late may see a later fsync's failure too: it fails, which is safe.
    Status result = s.failed >= needed ? s.failure : Status::Ok();
    if (--s.callers == 0) {
      dir_syncs_.erase(dir);
    }
    return result;
  }

 private:
  std::string PathOf(const std::string& id) const {
    return blobs_ + "/" + id.substr(0, 2) + "/" + id.substr(2, 2) + "/" + id;
  }

  struct DirSync {
    uint64_t started = 0;   // fsyncs begun
    uint64_t finished = 0;  // the last one finished
    uint64_t failed = 0;    // the last one that failed, with `failure`
    Status failure;
    bool running = false;
    int callers = 0;  // in SyncDir for this directory; the entry goes when none is left
    std::condition_variable finished_cv;
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
  std::string tmp_;
  std::function<Status(const std::string&)> sync_dir_;
  static constexpr uint64_t kIdsPerDirectory = 64;
  uint32_t first_dir_ = 0;
  std::atomic<uint64_t> ids_made_{0};
  std::mutex sync_mu_;
  std::unordered_map<std::string, DirSync> dir_syncs_;  // node-based: entries stay put
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

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root, LocalBlobStoreOptions options) {
  auto store = std::make_unique<LocalBlobStore>(root, std::move(options));
  COFFRE_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<BlobStore>(std::move(store));
}

}  // namespace coffre::storage
