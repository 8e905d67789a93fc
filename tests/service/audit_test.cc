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

namespace coffre::service {
namespace {

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
    ASSERT_TRUE(t.ok());
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_TRUE(b.ok());
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
  ASSERT_TRUE(Put("2026/contrat.pdf", Bytes(100, 7)).ok());
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
  ASSERT_TRUE(Put("doc", Bytes(100, 7)).ok());
  RequestInfo get{"REQ0002", "COACCESSKEY", "192.0.2.1:40001", "GetObject"};
  auto reader = service_->OpenObject(bucket_, "doc", &get);
  ASSERT_TRUE(reader.ok());
  Bytes buf(200);
  ASSERT_TRUE((*reader)->Read(buf).ok());
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].operation, audit::Operation::kDataKeyUnwrap);
  EXPECT_EQ(events[1].object_id, events[0].object_id);
  EXPECT_EQ(events[1].request.request_id, "REQ0002");
  EXPECT_EQ(events[1].request.action, "GetObject");
}

TEST_F(ServiceAuditTest, MultipartRecordsEachKeyUseOnce) {
  auto id = service_->CreateUpload(bucket_, "big", {}, &request_);
  ASSERT_TRUE(id.ok());
  auto w = service_->BeginPart(bucket_, "big", *id, 1, {}, &request_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(Bytes(50, 1)).ok());
  auto part = (*w)->Commit({});
  ASSERT_TRUE(part.ok());
  auto done = service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_);
  ASSERT_TRUE(done.ok());
  auto events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].operation, audit::Operation::kDataKeyWrap);    // CreateMultipartUpload
  EXPECT_EQ(events[1].operation, audit::Operation::kDataKeyUnwrap);  // UploadPart
  EXPECT_EQ(events[2].operation, audit::Operation::kDataKeyWrap);    // Complete
  for (const auto& e : events) {
    EXPECT_EQ(e.object_id, *id);
    EXPECT_EQ(e.object_key, "big");
  }
}

TEST_F(ServiceAuditTest, UnwritableLogRefusesEveryKeyUse) {
  ASSERT_TRUE(Put("doc", Bytes(100, 7)).ok());
  auto id = service_->CreateUpload(bucket_, "big", {}, &request_);
  ASSERT_TRUE(id.ok());
  auto w = service_->BeginPart(bucket_, "big", *id, 1, {}, &request_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(Bytes(50, 1)).ok());
  auto part = (*w)->Commit({});
  ASSERT_TRUE(part.ok());
  const size_t blobs_before = BlobCount();
  recorder_.set_failing(true);

  // PUT: the body may be sealed while the record is being made (Recorder::Start), but the object
  // is never published: Commit fails and no blob is left behind.
  auto put = service_->BeginPut(bucket_, "new", {}, {}, &request_);
  ASSERT_TRUE(put.ok());
  ASSERT_TRUE((*put)->Write(Bytes(10, 1)).ok());
  auto committed = (*put)->Commit({});
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().code, Errc::kUnavailable);
  EXPECT_EQ(BlobCount(), blobs_before);
  EXPECT_FALSE(service_->HeadObject(bucket_, "new").ok());
  // GET: the reader releases no byte.
  auto get = service_->OpenObject(bucket_, "doc", &request_);
  ASSERT_TRUE(get.ok());
  Bytes got(100, 0);
  auto n = (*get)->Read(got);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Errc::kUnavailable);
  EXPECT_EQ(got, Bytes(100, 0));
  // Multipart: no upload created, no part writer, no completion.
  auto create = service_->CreateUpload(bucket_, "other", {}, &request_);
  ASSERT_FALSE(create.ok());
  EXPECT_EQ(create.error().code, Errc::kUnavailable);
  auto uploads = service_->ListUploads(bucket_, {});
  ASSERT_TRUE(uploads.ok());
  EXPECT_EQ(uploads->uploads.size(), 1u);
  auto part2 = service_->BeginPart(bucket_, "big", *id, 2, {}, &request_);
  ASSERT_FALSE(part2.ok());
  EXPECT_EQ(part2.error().code, Errc::kUnavailable);
  auto done = service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Errc::kUnavailable);
  EXPECT_FALSE(service_->HeadObject(bucket_, "big").ok());  // not published
  EXPECT_EQ(recorder_.refused(), 5);

  // Once the log is writable again, key use resumes.
  recorder_.set_failing(false);
  EXPECT_TRUE(service_->OpenObject(bucket_, "doc", &request_).ok());
  EXPECT_TRUE(service_->CompleteUpload(bucket_, "big", *id, {{1, part->etag}}, {}, &request_).ok());
}

TEST_F(ServiceAuditTest, DecryptionIntegrityFailureIsRecorded) {
  ASSERT_TRUE(Put("doc", Bytes(10000, 3)).ok());
  for (auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
    if (!e.is_regular_file()) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(crypto::kHeaderSize + 10));
    char c = 0x55;
    f.write(&c, 1);
  }
  RequestInfo get{"REQBAD", "COACCESSKEY", "192.0.2.1:40002", "GetObject"};
  auto reader = service_->OpenObject(bucket_, "doc", &get);
  ASSERT_TRUE(reader.ok());
  Bytes buf(20000);
  auto n = (*reader)->Read(buf);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Errc::kCorruption);
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
  ASSERT_TRUE(log.ok());
  service_->set_audit(log->get());
  ASSERT_TRUE(Put("doc", Bytes(100, 7)).ok());
  auto other = db::Connection::Open(dir_ + "/audit.db", db::OpenMode::kReadWrite, 100);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN IMMEDIATE").ok());
  {
    auto get = service_->OpenObject(bucket_, "doc", &request_);
    ASSERT_TRUE(get.ok());
    // Decrypted when opened (one segment), and still held back until its record is durable.
    EXPECT_TRUE((*get)->NextReadInMemory());
    Bytes got(100, 0);
    auto n = (*get)->Read(got);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().code, Errc::kUnavailable);
    EXPECT_EQ(got, Bytes(100, 0));  // no decrypted byte left the service
    // A PUT seals its body meanwhile but is never published.
    auto put = service_->BeginPut(bucket_, "during-lock", {}, {}, &request_);
    ASSERT_TRUE(put.ok());
    ASSERT_TRUE((*put)->Write(Bytes(10, 2)).ok());
    auto committed = (*put)->Commit({});
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, Errc::kUnavailable);
    EXPECT_FALSE(service_->HeadObject(bucket_, "during-lock").ok());
  }
  EXPECT_FALSE((*log)->healthy());
  ASSERT_TRUE((*other)->Exec("ROLLBACK").ok());
  {
    auto get = service_->OpenObject(bucket_, "doc", &request_);
    ASSERT_TRUE(get.ok());
    // Decrypted when opened (one segment), and still held back until its record is durable.
    EXPECT_TRUE((*get)->NextReadInMemory());
    Bytes got(100, 0);
    auto n = (*get)->Read(got);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 100u);
    EXPECT_EQ(got, Bytes(100, 7));
  }
  EXPECT_TRUE((*log)->healthy());
  service_->set_audit(nullptr);
}

}  // namespace
}  // namespace coffre::service
