// Key-usage auditing through the object service: one record per key use with the request's
// fields, and fail-closed behaviour when the audit log cannot be written.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coffre/audit/audit_log.h"
#include "coffre/db/sqlite.h"
#include "coffre/service/object_service.h"
#include "support/fake_recorder.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

namespace fs = std::filesystem;

using test_support::FakeRecorder;

class ServiceAuditTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("svc-audit"));
    ServiceOptions opts;
    opts.segment_size = 4096;
    opts.min_part_size = 10;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    service_->set_audit(&recorder_);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
    request_ = RequestInfo{"REQ0001", "COACCESSKEY", "192.0.2.1:40000", "PutObject"};
  }

  SResult<PutResult> Put(const std::string& key, const Bytes& data) {
    auto w = service_->BeginPut(bucket_, key, {}, {}, &request_);
    if (!w.ok()) return w.error();
    if (auto r = (*w)->Write(data); !r.ok()) return r.error();
    return (*w)->Commit({});
  }

  size_t BlobCount() {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
      if (e.is_regular_file()) ++n;
    }
    return n;
  }

  std::vector<audit::Event> Events() { return recorder_.events(); }

  std::unique_ptr<ObjectService> service_;
  FakeRecorder recorder_;
  std::string tenant_;
  catalog::Bucket bucket_;
  RequestInfo request_;
};

TEST_F(ServiceAuditTest, PutRecordsOneWrapWithTheRequestsFields) {
  ASSERT_OK(Put("2026/contrat.pdf", Bytes(100, 7)));
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  const audit::Event& e = events[0];
  EXPECT_EQ(e.operation, audit::Operation::kDataKeyWrap);
  EXPECT_EQ(e.outcome, audit::Outcome::kSuccess);
  EXPECT_EQ(e.tenant, tenant_);
  EXPECT_EQ(e.key_id, tenant_);  // the tenant key id is the tenant id
  EXPECT_EQ(e.key_version, 1u);
  EXPECT_EQ(e.bucket, "dossiers");
  EXPECT_EQ(e.object_key, "2026/contrat.pdf");
  EXPECT_FALSE(e.object_id.empty());
  EXPECT_EQ(e.request.request_id, "REQ0001");
  EXPECT_EQ(e.request.access_key_id, "COACCESSKEY");
  EXPECT_EQ(e.request.client_address, "192.0.2.1:40000");
  EXPECT_EQ(e.request.action, "PutObject");
}

TEST_F(ServiceAuditTest, GetRecordsOneUnwrapOfTheSameObject) {
  ASSERT_OK(Put("doc", Bytes(100, 7)));
  RequestInfo get{"REQ0002", "COACCESSKEY", "192.0.2.1:40001", "GetObject"};
  auto reader = service_->OpenObject(bucket_, "doc", &get);
  ASSERT_OK(reader);
  Bytes buf(200);
  ASSERT_OK((*reader)->Read(buf));
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].operation, audit::Operation::kDataKeyUnwrap);
  EXPECT_EQ(events[1].object_id, events[0].object_id);
  EXPECT_EQ(events[1].request.request_id, "REQ0002");
  EXPECT_EQ(events[1].request.action, "GetObject");
}

TEST_F(ServiceAuditTest, MultipartRecordsEachKeyUseOnce) {
  auto id = service_->CreateUpload(bucket_, "big", {}, &request_);
  ASSERT_OK(id);
  auto w = service_->BeginPart(bucket_, "big", *id, 1, {}, &request_);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(Bytes(50, 1)));
  auto part = (*w)->Commit({});
  ASSERT_OK(part);
  auto done = service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_);
  ASSERT_OK(done);
  auto events = Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].operation, audit::Operation::kDataKeyWrap);    // CreateMultipartUpload
  EXPECT_EQ(events[1].operation, audit::Operation::kDataKeyUnwrap);  // UploadPart
  EXPECT_EQ(events[2].operation, audit::Operation::kDataKeyUnwrap);  // Complete seals the manifest
  EXPECT_EQ(events[3].operation, audit::Operation::kDataKeyWrap);    // Complete
  for (const auto& e : events) {
    EXPECT_EQ(e.object_id, *id);
    EXPECT_EQ(e.object_key, "big");
  }
}

TEST_F(ServiceAuditTest, UnwritableLogRefusesEveryKeyUse) {
  ASSERT_OK(Put("doc", Bytes(100, 7)));
  auto id = service_->CreateUpload(bucket_, "big", {}, &request_);
  ASSERT_OK(id);
  auto w = service_->BeginPart(bucket_, "big", *id, 1, {}, &request_);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(Bytes(50, 1)));
  auto part = (*w)->Commit({});
  ASSERT_OK(part);
  const size_t blobs_before = BlobCount();
  recorder_.set_failing(true);

  // PUT: the body may be sealed while the record is being made (Recorder::Start), but the object
  // is never published: Commit fails and no blob is left behind.
  auto put = service_->BeginPut(bucket_, "new", {}, {}, &request_);
  ASSERT_OK(put);
  ASSERT_OK((*put)->Write(Bytes(10, 1)));
  auto committed = (*put)->Commit({});
  ASSERT_THAT(committed, StatusIs(Errc::kUnavailable));
  EXPECT_EQ(BlobCount(), blobs_before);
  EXPECT_THAT(service_->HeadObject(bucket_, "new"), Not(IsOk()));
  // GET: the reader releases no byte.
  auto get = service_->OpenObject(bucket_, "doc", &request_);
  ASSERT_OK(get);
  Bytes got(100, 0);
  auto n = (*get)->Read(got);
  ASSERT_THAT(n, StatusIs(Errc::kUnavailable));
  EXPECT_EQ(got, Bytes(100, 0));
  // Multipart: no upload created, no part writer, no completion.
  auto create = service_->CreateUpload(bucket_, "other", {}, &request_);
  ASSERT_THAT(create, StatusIs(Errc::kUnavailable));
  auto uploads = service_->ListUploads(bucket_, {});
  ASSERT_OK(uploads);
  EXPECT_EQ(uploads->uploads.size(), 1u);
  auto part2 = service_->BeginPart(bucket_, "big", *id, 2, {}, &request_);
  ASSERT_THAT(part2, StatusIs(Errc::kUnavailable));
  auto done = service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_);
  ASSERT_THAT(done, StatusIs(Errc::kUnavailable));
  EXPECT_THAT(service_->HeadObject(bucket_, "big"), Not(IsOk()));  // not published
  EXPECT_EQ(recorder_.refused(), 5);

  // Once the log is writable again, key use resumes.
  recorder_.set_failing(false);
  EXPECT_OK(service_->OpenObject(bucket_, "doc", &request_));
  EXPECT_OK(service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_));
}

TEST_F(ServiceAuditTest, DecryptionIntegrityFailureIsRecorded) {
  ASSERT_OK(Put("doc", Bytes(10000, 3)));
  for (auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
    if (!e.is_regular_file()) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(crypto::kHeaderSize + 10));
    char c = 0x55;
    f.write(&c, 1);
  }
  RequestInfo get{"REQBAD", "COACCESSKEY", "192.0.2.1:40002", "GetObject"};
  auto reader = service_->OpenObject(bucket_, "doc", &get);
  ASSERT_OK(reader);
  Bytes buf(20000);
  auto n = (*reader)->Read(buf);
  ASSERT_THAT(n, StatusIs(Errc::kCorruption));
  auto events = Events();
  ASSERT_EQ(events.size(), 3u);  // wrap, unwrap, failed decryption
  EXPECT_EQ(events[2].operation, audit::Operation::kDecrypt);
  EXPECT_EQ(events[2].outcome, audit::Outcome::kIntegrityFailure);
  EXPECT_EQ(events[2].request.request_id, "REQBAD");
  EXPECT_EQ(events[2].object_id, events[0].object_id);
}

// The real log: while another process holds audit.db's write lock, GET fails closed; it works
// again as soon as the lock is gone.
TEST_F(ServiceAuditTest, LockedAuditDatabaseFailsClosed) {
  audit::AuditLogOptions opts;
  opts.busy_timeout_ms = 100;
  auto log = audit::AuditLog::Open(dir_ + "/audit.db", SecretBytes::Random(32), opts);
  ASSERT_OK(log);
  service_->set_audit(log->get());
  ASSERT_OK(Put("doc", Bytes(100, 7)));
  auto other = db::Connection::Open(dir_ + "/audit.db", db::OpenMode::kReadWrite, 100);
  ASSERT_OK(other);
  ASSERT_OK((*other)->Exec("BEGIN IMMEDIATE"));
  {
    auto get = service_->OpenObject(bucket_, "doc", &request_);
    ASSERT_OK(get);
    // Decrypted when opened (one segment), and still held back until its record is durable.
    EXPECT_TRUE((*get)->NextReadInMemory());
    Bytes got(100, 0);
    auto n = (*get)->Read(got);
    ASSERT_THAT(n, StatusIs(Errc::kUnavailable));
    EXPECT_EQ(got, Bytes(100, 0));  // no decrypted byte left the service
    // A PUT seals its body meanwhile but is never published.
    auto put = service_->BeginPut(bucket_, "during-lock", {}, {}, &request_);
    ASSERT_OK(put);
    ASSERT_OK((*put)->Write(Bytes(10, 2)));
    auto committed = (*put)->Commit({});
    ASSERT_THAT(committed, StatusIs(Errc::kUnavailable));
    EXPECT_THAT(service_->HeadObject(bucket_, "during-lock"), Not(IsOk()));
  }
  EXPECT_FALSE((*log)->healthy());
  ASSERT_OK((*other)->Exec("ROLLBACK"));
  {
    auto get = service_->OpenObject(bucket_, "doc", &request_);
    ASSERT_OK(get);
    // Decrypted when opened (one segment), and still held back until its record is durable.
    EXPECT_TRUE((*get)->NextReadInMemory());
    Bytes got(100, 0);
    auto n = (*get)->Read(got);
    ASSERT_OK(n);
    EXPECT_EQ(*n, 100u);
    EXPECT_EQ(got, Bytes(100, 7));
  }
  EXPECT_TRUE((*log)->healthy());
  service_->set_audit(nullptr);
}

}  // namespace
}  // namespace coffre::service
