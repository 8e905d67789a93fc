// Small blobs in pack records: placement, reads, outgrowing a record, removal by punching holes,
// reopening, pack rollover, the fsck walk of packs, and the shared pack flush.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "coffre/storage/blob_store.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"
#include "support/test_data.h"

namespace coffre::storage {
namespace {

using test_support::Pattern;
using test_support::StatusIs;

// A packed blob's id: 32 hex digits of its own, then the pack number and the record's offset in
// 4 KiB units, 8 hex digits each.
uint32_t PackOf(const std::string& id) { return static_cast<uint32_t>(std::stoul(id.substr(32, 8), nullptr, 16)); }
uint64_t OffsetOf(const std::string& id) { return std::stoull(id.substr(40, 8), nullptr, 16) * 4096; }

class PackStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void TearDown() override { store_.reset(); }

  void Reopen(LocalBlobStoreOptions options = {}) {
    store_.reset();
    auto store = OpenLocalBlobStore(root_, std::move(options));
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  // Writes `body` as the service does: a placeholder header, the body, then the header in place.
  std::string Put(const std::vector<uint8_t>& body, std::optional<uint64_t> expected) {
    auto w = store_->CreateBlob(expected);
    EXPECT_OK(w);
    if (!w.ok()) return "";
    const size_t head = std::min<size_t>(4, body.size());
    EXPECT_OK((*w)->Append(std::vector<uint8_t>(head, 0)));
    EXPECT_OK((*w)->Append(std::span<const uint8_t>(body).subspan(head)));
    EXPECT_OK((*w)->WriteAt(0, std::span<const uint8_t>(body).first(head)));
    EXPECT_EQ((*w)->size(), body.size());
    Status st = (*w)->Commit();
    EXPECT_OK(st);
    return (*w)->id();
  }

  std::vector<uint8_t> Get(const std::string& id) {
    auto r = store_->Open(id);
    EXPECT_OK(r) << id;
    if (!r.ok()) return {};
    std::vector<uint8_t> out((*r)->size());
    EXPECT_OK((*r)->ReadAt(0, out));
    return out;
  }

  std::string PackPath(uint32_t n) const {
    char name[32];
    std::snprintf(name, sizeof name, "/packs/%08x.pack", n);
    return root_ + name;
  }
  uint64_t AllocatedBytes(uint32_t pack) const {
    struct stat st {};
    EXPECT_EQ(::stat(PackPath(pack).c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  size_t FilesUnderBlobs() const {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root_ + "/blobs")) n += e.is_regular_file();
    return n;
  }

  test_support::TempDir temp_{"packs"};
  const std::string root_ = temp_.str();
  std::unique_ptr<BlobStore> store_;
};

TEST_F(PackStoreTest, SmallBlobsGoToRecordsSideBySideAndReadBack) {
  const auto a = Pattern(100, 1), b = Pattern(5000, 2), c = Pattern(0, 3);
  const std::string ia = Put(a, a.size()), ib = Put(b, b.size()), ic = Put(c, c.size());
  for (const auto& id : {ia, ib, ic}) {
    EXPECT_EQ(id.size(), 48u) << id;
    EXPECT_EQ(PackOf(id), 0u) << id;
  }
  // Each record takes its 64-byte header and its blob, rounded up to 4 KiB.
  EXPECT_EQ(OffsetOf(ia), 0u);
  EXPECT_EQ(OffsetOf(ib), 4096u);
  EXPECT_EQ(OffsetOf(ic), 4096u + 8192u);
  EXPECT_EQ(Get(ia), a);
  EXPECT_EQ(Get(ib), b);
  EXPECT_EQ(Get(ic), c);
  EXPECT_EQ(FilesUnderBlobs(), 0u);

  auto r = store_->Open(ib);
  ASSERT_OK(r);
  std::vector<uint8_t> tail(10);
  ASSERT_OK((*r)->ReadAt(4990, tail));
  EXPECT_EQ(tail, std::vector<uint8_t>(b.end() - 10, b.end()));
  std::vector<uint8_t> past(11);
  EXPECT_THAT((*r)->ReadAt(4990, past), StatusIs(StatusCode::kCorruption));  // never another record's bytes
  // Private, like the blob files.
  struct stat st {};
  ASSERT_EQ(::stat(PackPath(0).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST_F(PackStoreTest, LargeOrUnknownSizesGetFilesOfTheirOwn) {
  for (std::optional<uint64_t> expected :
       {std::optional<uint64_t>{}, std::optional<uint64_t>{LocalBlobStoreOptions{}.max_packed_blob + 1}}) {
    const auto body = Pattern(300, 9);
    const std::string id = Put(body, expected);
    EXPECT_EQ(id.size(), 32u);
    EXPECT_EQ(Get(id), body);
  }
  EXPECT_EQ(FilesUnderBlobs(), 2u);
}

TEST_F(PackStoreTest, ABlobThatOutgrowsItsRecordMovesToAFileUnderTheSameId) {
  const auto body = Pattern(20000, 4);
  const std::string grown = Put(body, 10);  // declared 10 bytes, sent 20,000
  ASSERT_EQ(grown.size(), 48u);
  EXPECT_EQ(Get(grown), body);
  EXPECT_EQ(FilesUnderBlobs(), 1u);
  // The header written last, past the record, moves it too.
  auto w = store_->CreateBlob(10);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Pattern(8, 5)));
  ASSERT_OK((*w)->WriteAt(6000, Pattern(4, 6)));
  ASSERT_OK((*w)->Commit());
  const auto got = Get((*w)->id());
  ASSERT_EQ(got.size(), 6004u);
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 8), Pattern(8, 5));
  EXPECT_EQ(std::vector<uint8_t>(got.end() - 4, got.end()), Pattern(4, 6));

  // Listed once each, from their files; removed from there.
  auto listed = store_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 2u);
  ASSERT_OK(store_->Remove(grown));
  EXPECT_THAT(store_->Open(grown), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(FilesUnderBlobs(), 1u);
}

TEST_F(PackStoreTest, RemovePunchesTheRecordOutAndLeavesItsNeighbours) {
  std::vector<std::string> ids;
  std::vector<std::vector<uint8_t>> bodies;
  for (int i = 0; i < 3; ++i) {
    bodies.push_back(Pattern(60000, static_cast<uint8_t>(i)));
    ids.push_back(Put(bodies.back(), bodies.back().size()));
  }
  const uint64_t before = AllocatedBytes(0);
  ASSERT_OK(store_->Remove(ids[1]));
  EXPECT_THAT(store_->Open(ids[1]), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(store_->Remove(ids[1]));  // already gone
  EXPECT_EQ(Get(ids[0]), bodies[0]);
  EXPECT_EQ(Get(ids[2]), bodies[2]);
  EXPECT_LE(AllocatedBytes(0), before - 60000);  // its blocks went back to the file system
  auto listed = store_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  std::vector<std::string> names;
  for (const auto& f : *listed) names.push_back(f.name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> expected = {ids[0], ids[2]};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected);
}

TEST_F(PackStoreTest, AnIdThatIsNotTheRecordsNeverReachesIt) {
  const auto body = Pattern(500, 8);
  const std::string id = Put(body, body.size());
  // Same pack and offset, another blob's own part: as a caller holding a stale or forged id.
  std::string other = id;
  other[5] = other[5] == '0' ? '1' : '0';
  EXPECT_THAT(store_->Open(other), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(store_->Remove(other));
  EXPECT_EQ(Get(id), body);
  // A pack that does not exist, an offset past the end.
  EXPECT_THAT(store_->Open(id.substr(0, 32) + "00000007" + "00000000"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store_->Open(id.substr(0, 32) + "00000000" + "00001000"), StatusIs(StatusCode::kNotFound));
}

TEST_F(PackStoreTest, ADamagedHeaderIsNoRecordAndItsNeighboursAreSafe) {
  const auto a = Pattern(100, 1), b = Pattern(100, 2);
  const std::string ia = Put(a, a.size()), ib = Put(b, b.size());
  {
    // A bit flip in a's capacity would stretch its record over b's.
    int fd = ::open(PackPath(0).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t byte = 0;
    ASSERT_EQ(::pread(fd, &byte, 1, 16 + 5), 1);
    byte ^= 0x01;
    ASSERT_EQ(::pwrite(fd, &byte, 1, 16 + 5), 1);
    ::close(fd);
  }
  EXPECT_THAT(store_->Open(ia), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(store_->Remove(ia));
  EXPECT_EQ(Get(ib), b);
  std::vector<std::string> strays;
  auto listed = store_->ListBlobs(&strays);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, ib);
  EXPECT_EQ(strays, std::vector<std::string>{PackPath(0) + " bytes 0..4096"});
}

TEST_F(PackStoreTest, AnUncommittedWriterLeavesNothing) {
  {
    auto w = store_->CreateBlob(100);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(Pattern(100, 1)));
  }
  {
    auto w = store_->CreateBlob(100);  // outgrown, then abandoned: its temporary goes too
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(Pattern(9000, 1)));
  }
  std::vector<std::string> strays;
  auto listed = store_->ListBlobs(&strays);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_TRUE(strays.empty());
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/tmp"));
  EXPECT_EQ(AllocatedBytes(0), 0u);
}

TEST_F(PackStoreTest, AReopenedStoreAddsRecordsAfterTheLastOne) {
  const auto a = Pattern(5000, 1);
  const std::string ia = Put(a, a.size());
  Reopen();
  const auto b = Pattern(10, 2);
  const std::string ib = Put(b, b.size());
  EXPECT_EQ(PackOf(ib), PackOf(ia));
  EXPECT_EQ(OffsetOf(ib), 8192u);
  EXPECT_EQ(Get(ia), a);
  EXPECT_EQ(Get(ib), b);
}

TEST_F(PackStoreTest, AFullPackIsFollowedByTheNext) {
  LocalBlobStoreOptions options;
  options.pack_size_limit = 16384;
  Reopen(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Put(Pattern(5000, static_cast<uint8_t>(i)), 5000));  // 8 KiB each
  EXPECT_EQ(PackOf(ids[0]), 0u);
  EXPECT_EQ(PackOf(ids[1]), 0u);
  EXPECT_EQ(PackOf(ids[2]), 1u);
  EXPECT_EQ(OffsetOf(ids[2]), 0u);
  EXPECT_EQ(PackOf(ids[4]), 2u);
  // A record larger than a whole pack still gets one, alone.
  const std::string big = Put(Pattern(40000, 9), 40000);
  EXPECT_EQ(PackOf(big), 3u);
  Reopen(options);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get(ids[i]), Pattern(5000, static_cast<uint8_t>(i)));
  EXPECT_EQ(Get(big), Pattern(40000, 9));
  auto listed = store_->ListBlobs(nullptr);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 6u);
  EXPECT_EQ(PackOf(Put(Pattern(1, 1), 1)), 4u);  // the last pack was full: the next one
}

TEST_F(PackStoreTest, FsckWalkListsRecordsWithTheirTimesAndReportsForeignBytes) {
  const std::string a = Put(Pattern(100, 1), 100);
  const std::string b = Put(Pattern(200, 2), 200);
  // Bytes where a record would start but that are none (a torn write, a stray tool), two blocks
  // of them after the records, and a file in the packs area that is no pack.
  {
    int fd = ::open(PackPath(0).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const auto junk = Pattern(8192, 5);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 5 * 4096), 8192);
    ::close(fd);
  }
  std::ofstream(root_ + "/packs/notes.txt") << "x";

  std::vector<std::string> strays;
  auto listed = store_->ListBlobs(&strays);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 2u);
  std::sort(listed->begin(), listed->end(), [](const auto& x, const auto& y) { return x.size < y.size; });
  EXPECT_EQ((*listed)[0].name, a);
  EXPECT_EQ((*listed)[0].size, 100u);
  EXPECT_EQ((*listed)[1].name, b);
  EXPECT_EQ((*listed)[1].size, 200u);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(std::abs(now - (*listed)[0].modified_unix), 5);
  std::sort(strays.begin(), strays.end());
  EXPECT_EQ(strays, (std::vector<std::string>{PackPath(0) + " bytes 20480..28672", root_ + "/packs/notes.txt"}));
  // Listing leaves the foreign bytes alone, and a store opened later puts new records after them.
  Reopen();
  const std::string c = Put(Pattern(10, 3), 10);
  EXPECT_GE(OffsetOf(c), 28672u);

  // fsck --repair punches the pack bytes out; a stray file is not Coffre's to remove.
  const uint64_t before = AllocatedBytes(0);
  ASSERT_OK(store_->RemoveStray(strays[0]));
  EXPECT_EQ(AllocatedBytes(0), before - 8192);
  EXPECT_THAT(store_->RemoveStray(strays[1]), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(std::filesystem::exists(strays[1]));
  strays.clear();
  listed = store_->ListBlobs(&strays);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 3u);
  EXPECT_EQ(strays, std::vector<std::string>{root_ + "/packs/notes.txt"});
  for (const auto& id : {a, b, c}) EXPECT_OK(store_->Open(id)) << id;
  // Never a record, nor bytes given some other way.
  const std::string at_a = PackPath(0) + " bytes 0..4096";
  EXPECT_THAT(store_->RemoveStray(at_a), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_OK(store_->Open(a));
  for (const std::string& bad :
       {PackPath(0) + " bytes 1..4096", PackPath(0) + " bytes 8192..4096", PackPath(0) + " bytes x..8192",
        root_ + "/blobs/x bytes 0..4096", PackPath(0) + " bytes 4096.."}) {
    EXPECT_THAT(store_->RemoveStray(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST_F(PackStoreTest, PackingOffGivesEveryBlobAFile) {
  EXPECT_EQ(store_->MaxPackedBlob(), LocalBlobStoreOptions{}.max_packed_blob);
  const std::string packed = Put(Pattern(10, 1), 10);
  LocalBlobStoreOptions options;
  options.max_packed_blob = 0;
  Reopen(options);
  EXPECT_EQ(store_->MaxPackedBlob(), 0u);
  const std::string id = Put(Pattern(10, 2), 10);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(Get(id), Pattern(10, 2));
  EXPECT_EQ(Get(packed), Pattern(10, 1));  // records already written stay readable
  ASSERT_OK(store_->Remove(packed));
  EXPECT_THAT(store_->Open(packed), StatusIs(StatusCode::kNotFound));
}

// Records committed while the pack's fdatasync is under way share the next one, and each learns
// whether the flush that covered it failed; a record whose flush failed is punched out again.
class PackSyncTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr int kWriters = 8;

  void SetUp() override {
    LocalBlobStoreOptions options;
    options.sync_pack = [this](int fd) -> Status {
      // The first flush lasts until every writer has written its record: all of them need the next.
      if (syncs_.fetch_add(1) == 0) {
        first_flush_began_.store(true);
        for (int waited_ms = 0; waited_ms < 10000 && !AllWritten(fd); ++waited_ms) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        // A writer that has written may not have asked for its flush yet; give it time to queue.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      return GetParam() ? Status::IOError("fdatasync: injected failure") : Status::Ok();
    };
    auto store = OpenLocalBlobStore(root_, std::move(options));
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }
  void TearDown() override { store_.reset(); }

  // Every record starts with the magic "CoffrePk" once written.
  bool AllWritten(int fd) const {
    for (int i = 0; i < kWriters; ++i) {
      char magic[8] = {};
      if (::pread(fd, magic, sizeof magic, static_cast<off_t>(i) * 4096) != 8 || std::string(magic, 8) != "CoffrePk") {
        return false;
      }
    }
    return true;
  }

  test_support::TempDir temp_{"packsync"};
  const std::string root_ = temp_.str();
  std::atomic<int> syncs_{0};
  std::atomic<bool> first_flush_began_{false};
  std::unique_ptr<BlobStore> store_;
};

TEST_P(PackSyncTest, RecordsCommittedTogetherShareTheFlushAndItsOutcome) {
  const bool flush_fails = GetParam();
  std::vector<std::unique_ptr<BlobWriter>> writers;
  for (int i = 0; i < kWriters; ++i) {
    auto w = store_->CreateBlob(100);  // one 4 KiB record each, in order
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::vector<uint8_t>(100, static_cast<uint8_t>(i))));
    writers.push_back(std::move(w).value());
  }
  std::vector<Status> results(kWriters);
  // The first writer's flush begins before anyone else commits, so it covers that writer alone and
  // every other record is written while it runs: they all need, and share, the second flush.
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = writers[0]->Commit(); });
  while (!first_flush_began_.load()) std::this_thread::yield();
  for (int i = 1; i < kWriters; ++i) {
    threads.emplace_back([&, i] { results[i] = writers[i]->Commit(); });
  }
  for (auto& th : threads) th.join();

  for (int i = 0; i < kWriters; ++i) {
    if (flush_fails) {
      EXPECT_THAT(results[i], StatusIs(StatusCode::kIOError)) << i;
      EXPECT_THAT(store_->Open(writers[i]->id()), StatusIs(StatusCode::kNotFound)) << i;
    } else {
      EXPECT_OK(results[i]) << i;
      auto r = store_->Open(writers[i]->id());
      ASSERT_OK(r);
      std::vector<uint8_t> out(100);
      ASSERT_OK((*r)->ReadAt(0, out));
      EXPECT_EQ(out, std::vector<uint8_t>(100, static_cast<uint8_t>(i)));
    }
  }
  // Two flushes unless a writer was descheduled between its write and its request for a flush
  // for longer than the first flush lasted; never one each.
  EXPECT_GE(syncs_.load(), 2);
  EXPECT_LT(syncs_.load(), kWriters);
}

INSTANTIATE_TEST_SUITE_P(FlushOutcome, PackSyncTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Fails" : "Succeeds"; });

// Many generations of shared flushes: each waiting writer is woken once, either covered by a flush
// or to run the next one, so a wake-up that went missing would leave a writer waiting forever
// (the test would hang). Every commit returns, every record reads back, and flushes are shared.
TEST_F(PackStoreTest, WritersKeepCommittingThroughManySharedFlushes) {
  constexpr int kThreads = 8;
  constexpr int kCommitsEach = 150;
  std::atomic<int> syncs{0};
  LocalBlobStoreOptions options;
  options.sync_pack = [&syncs](int fd) -> Status {
    ++syncs;
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // long enough for others to queue
    return ::fdatasync(fd) == 0 ? Status::Ok() : Status::IOError("fdatasync");
  };
  Reopen(std::move(options));
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommitsEach; ++i) {
        auto w = store_->CreateBlob(64);
        if (!w.ok() || !(*w)->Append(Pattern(64, static_cast<uint8_t>(t * 31 + i))).ok() || !(*w)->Commit().ok()) {
          ++failures;
          continue;
        }
        ids[t].push_back((*w)->id());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(ids[t].size(), static_cast<size_t>(kCommitsEach));
    for (int i = 0; i < kCommitsEach; ++i) {
      EXPECT_EQ(Get(ids[t][i]), Pattern(64, static_cast<uint8_t>(t * 31 + i))) << t << "/" << i;
    }
  }
  EXPECT_LT(syncs.load(), kThreads * kCommitsEach);
}

}  // namespace
}  // namespace coffre::storage
