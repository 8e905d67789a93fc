#include "coffre/audit/audit_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <utility>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "coffre/db/sqlite.h"

namespace coffre::audit {
namespace {

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE signing_keys (
  key_id        TEXT PRIMARY KEY,
  public_key    BLOB NOT NULL,
  sealed_secret BLOB NOT NULL,   -- AES-256-GCM under the root key, AAD "coffre/v1/audit-signing-key/<key_id>"
  created       INTEGER NOT NULL,
  active        INTEGER NOT NULL
);
CREATE TABLE records (
  gseq           INTEGER PRIMARY KEY,  -- global chain position, from 1
  tenant         TEXT NOT NULL,
  seq            INTEGER NOT NULL,     -- tenant chain position, from 1
  time_ms        INTEGER NOT NULL,
  key_id         TEXT NOT NULL,
  key_version    INTEGER NOT NULL,
  operation      TEXT NOT NULL,
  action         TEXT NOT NULL,
  bucket         TEXT NOT NULL,
  object_key     TEXT NOT NULL,
  object_id      TEXT NOT NULL,
  request_id     TEXT NOT NULL,
  access_key_id  TEXT NOT NULL,
  client_address TEXT NOT NULL,
  outcome        TEXT NOT NULL,
  prev           BLOB NOT NULL,
  hash           BLOB NOT NULL,
  global_hash    BLOB NOT NULL,
  UNIQUE (tenant, seq)
);
CREATE INDEX records_by_tenant_time ON records (tenant, time_ms);
CREATE TABLE heads (
  chain            TEXT PRIMARY KEY,   -- 't:' || tenant, or 'g' for the global chain
  seq              INTEGER NOT NULL,
  hash             BLOB NOT NULL,
  checkpointed_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE checkpoints (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  scope     TEXT NOT NULL,
  tenant    TEXT NOT NULL,
  seq       INTEGER NOT NULL,
  head      BLOB NOT NULL,
  time_ms   INTEGER NOT NULL,
  signer    TEXT NOT NULL,
  signature BLOB NOT NULL
);
CREATE INDEX checkpoints_by_chain ON checkpoints (scope, tenant, seq);
CREATE TABLE probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
)sql";

// Retention: where the live log starts once older records were archived and pruned.
constexpr std::string_view kSchemaV2 = R"sql(
CREATE TABLE archive_boundary (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  gseq INTEGER NOT NULL,   -- last archived (pruned) global position
  hash BLOB NOT NULL       -- G(gseq)
);
CREATE TABLE archive_heads (
  tenant TEXT PRIMARY KEY, -- each tenant's last archived record
  seq    INTEGER NOT NULL,
  hash   BLOB NOT NULL
);
)sql";

// Root key rotation: copies of a signing key's private half sealed under other root keys, found
// by a fingerprint of the root key that opens them. signing_keys.sealed_secret stays the copy
// under the root key the log was created with, emptied once a rotation has dropped that key.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE signing_key_seals (
  key_id           TEXT NOT NULL,
  root_fingerprint BLOB NOT NULL,   -- RootKeyFingerprint(root key)
  sealed_secret    BLOB NOT NULL,   -- as signing_keys.sealed_secret, under that root key
  created          INTEGER NOT NULL,
  PRIMARY KEY (key_id, root_fingerprint)
);
)sql";

constexpr std::string_view kRecordColumns =
    "seq, time_ms, tenant, key_id, key_version, operation, action, bucket, object_key, object_id, request_id, "
    "access_key_id, client_address, outcome, prev";

constexpr std::string_view kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3};

constexpr std::chrono::seconds kUnhealthyRetryInterval{1};

Bytes SigningKeyAad(const std::string& key_id) {
  std::string s = "coffre/v1/audit-signing-key/" + key_id;
  return Bytes(s.begin(), s.end());
}

// Names a root key without revealing it: HMAC-SHA256 keyed by the root key, first 16 bytes.
Bytes RootKeyFingerprint(const SecretBytes& root_key) {
  const crypto::Sha256Digest mac =
      crypto::HmacSha256(root_key.Reveal(), AsBytes("coffre/v1/audit-root-key-fingerprint"));
  return Bytes(mac.begin(), mac.begin() + 16);
}

// The private half of signing key `key_id` opened under `root_key`: the copy sealed under that
// root key (signing_key_seals), else the original copy (`original`, empty once dropped).
Result<SecretBytes> UnsealSigningSecret(db::Connection& conn, const std::string& key_id, ByteView original,
                                        const SecretBytes& root_key) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT sealed_secret FROM signing_key_seals "
                                                         "WHERE key_id = ? AND root_fingerprint = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key_id, RootKeyFingerprint(root_key)));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  auto secret = row ? crypto::OpenSecret(root_key, st.ColumnBlobView(0), SigningKeyAad(key_id))
                    : crypto::OpenSecret(root_key, original, SigningKeyAad(key_id));
  if (!secret.ok()) {
    return Status::PermissionDenied("the root key does not open the audit log's signing key");
  }
  return std::move(secret).value();
}

Hash HashFromBlob(ByteView b) {
  Hash h{};
  if (b.size() == h.size()) {
    std::copy(b.begin(), b.end(), h.begin());
  }
  return h;
}

// Reads a record from a statement selecting kRecordColumns first.
Record ReadRecord(const db::Statement& st) {
  Record r;
  r.seq = static_cast<uint64_t>(st.ColumnInt64(0));
  r.time_ms = st.ColumnInt64(1);
  r.tenant = st.ColumnText(2);
  r.key_id = st.ColumnText(3);
  r.key_version = static_cast<uint32_t>(st.ColumnInt64(4));
  r.operation = st.ColumnText(5);
  r.action = st.ColumnText(6);
  r.bucket = st.ColumnText(7);
  r.object_key = st.ColumnText(8);
  r.object_id = st.ColumnText(9);
  r.request_id = st.ColumnText(10);
  r.access_key_id = st.ColumnText(11);
  r.client_address = st.ColumnText(12);
  r.outcome = st.ColumnText(13);
  r.prev = HashFromBlob(st.ColumnBlobView(14));
  return r;
}

Checkpoint ReadCheckpoint(const db::Statement& st) {
  Checkpoint c;
  c.scope = st.ColumnText(0);
  c.tenant = st.ColumnText(1);
  c.seq = static_cast<uint64_t>(st.ColumnInt64(2));
  c.head = HashFromBlob(st.ColumnBlobView(3));
  c.time_ms = st.ColumnInt64(4);
  c.signer = st.ColumnText(5);
  c.signature = st.ColumnBlob(6);
  return c;
}

struct Head {
  uint64_t seq = 0;
  Hash hash{};
  uint64_t checkpointed_seq = 0;
};

Result<std::optional<Head>> ReadHead(db::Connection& conn, const std::string& chain) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                          conn.PrepareCached("SELECT seq, hash, checkpointed_seq FROM heads WHERE chain = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(chain));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<Head>();
  }
  Head h;
  h.seq = static_cast<uint64_t>(st.ColumnInt64(0));
  h.hash = HashFromBlob(st.ColumnBlobView(1));
  h.checkpointed_seq = static_cast<uint64_t>(st.ColumnInt64(2));
  return std::optional<Head>(h);
}

Result<SigningKey> LoadOrCreateSigningKey(db::Connection& conn, const SecretBytes& root_key, const Clock& clock) {
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT key_id, public_key, sealed_secret FROM signing_keys WHERE active = 1"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      std::string key_id = st.ColumnText(0);
      SigningKey key;
      key.public_key = st.ColumnBlob(1);
      COFFRE_ASSIGN_OR_RETURN(key.secret_key, UnsealSigningSecret(conn, key_id, st.ColumnBlobView(2), root_key));
      if (KeyId(key.public_key) != key_id) {
        return Status::Corruption("audit signing key id does not match its public key");
      }
      return key;
    }
  }
  SigningKey key = GenerateSigningKey();
  const std::string key_id = KeyId(key.public_key);
  COFFRE_ASSIGN_OR_RETURN(Bytes sealed, crypto::Seal(root_key, key.secret_key.Reveal(), SigningKeyAad(key_id)));
  COFFRE_ASSIGN_OR_RETURN(db::Statement ins,
                          conn.Prepare("INSERT INTO signing_keys (key_id, public_key, sealed_secret, created, active) "
                                       "VALUES (?, ?, ?, ?, 1)"));
  COFFRE_RETURN_IF_ERROR(ins.BindAll(key_id, key.public_key, sealed, ToUnixMillis(clock.Now())));
  COFFRE_RETURN_IF_ERROR(ins.Run());
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return key;
}

std::string ChainOf(const std::string& tenant) { return "t:" + tenant; }

Result<ChainPosition> ReadBoundary(db::Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT gseq, hash FROM archive_boundary WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return ChainPosition{};
  }
  return ChainPosition{static_cast<uint64_t>(st.ColumnInt64(0)), HashFromBlob(st.ColumnBlobView(1))};
}

}  // namespace

struct AuditLog::Pending {
  const Event* event = nullptr;
  Status status;
  bool done = false;
  std::function<void()> on_done;  // PendingRecord::OnDone, called by the writer with `done`
};

// Owns the event and its queue entry until the writer is done with them: the destructor waits,
// so a caller that gives up (a failed request) never leaves the writer a dangling pointer.
class AuditLog::PendingHandle final : public PendingRecord {
 public:
  PendingHandle(AuditLog& log, const Event& event) : log_(log), event_(event) { pending_.event = &event_; }
  ~PendingHandle() override { (void)Wait(); }
  PendingHandle(const PendingHandle&) = delete;
  PendingHandle& operator=(const PendingHandle&) = delete;

  Status Wait() override {
    std::unique_lock lock(log_.mu_);
    log_.done_cv_.wait(lock, [&] { return pending_.done; });
    return pending_.status;
  }

  void OnDone(std::function<void()> done) override {
    std::unique_lock lock(log_.mu_);
    if (!pending_.done) {
      pending_.on_done = std::move(done);
      return;
    }
    lock.unlock();
    done();
  }

  Pending& pending() { return pending_; }

 private:
  AuditLog& log_;
  Event event_;
  Pending pending_;
};

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path, const SecretBytes& root_key,
                                                 AuditLogOptions options) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: the root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, db::Connection::Open(path, db::OpenMode::kReadWriteCreate, options.busy_timeout_ms));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*conn, kMigrations));
  COFFRE_ASSIGN_OR_RETURN(SigningKey key, LoadOrCreateSigningKey(*conn, root_key, *options.clock));
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(conn), std::move(key), options));
}

namespace {

struct StoredSigningKey {
  std::string key_id;
  Bytes original;  // signing_keys.sealed_secret
};

Result<std::vector<StoredSigningKey>> ListSigningKeys(db::Connection& conn) {
  std::vector<StoredSigningKey> out;
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT key_id, sealed_secret FROM signing_keys"));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back({st.ColumnText(0), st.ColumnBlob(1)});
  }
  return out;
}

Result<std::unique_ptr<db::Connection>> OpenExisting(const std::string& path) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, db::Connection::Open(path, db::OpenMode::kReadWrite));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*conn, kMigrations));
  // Dropped sealed copies are overwritten with zeros, not left in free pages.
  COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete = ON"));
  return conn;
}

}  // namespace

Status AuditLog::AddRootKeySeal(const std::string& path, const SecretBytes& current_root,
                                const SecretBytes& new_root) {
  if (current_root.size() != crypto::kKeySize || new_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: root keys must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, OpenExisting(path));
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
  COFFRE_ASSIGN_OR_RETURN(std::vector<StoredSigningKey> keys, ListSigningKeys(*conn));
  const Bytes fingerprint = RootKeyFingerprint(new_root);
  for (const auto& k : keys) {
    COFFRE_ASSIGN_OR_RETURN(SecretBytes secret, UnsealSigningSecret(*conn, k.key_id, k.original, current_root));
    COFFRE_ASSIGN_OR_RETURN(Bytes sealed, crypto::Seal(new_root, secret.Reveal(), SigningKeyAad(k.key_id)));
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn->Prepare("INSERT INTO signing_key_seals (key_id, root_fingerprint, sealed_secret, "
                                          "created) VALUES (?, ?, ?, ?) ON CONFLICT (key_id, root_fingerprint) "
                                          "DO UPDATE SET sealed_secret = excluded.sealed_secret"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(k.key_id, fingerprint, sealed, ToUnixMillis(Clock::System().Now())));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return tx.Commit();
}

Status AuditLog::DropRootKeySealsExcept(const std::string& path, const SecretBytes& keep_root) {
  if (keep_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: the root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, OpenExisting(path));
  {
    COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
    COFFRE_ASSIGN_OR_RETURN(std::vector<StoredSigningKey> keys, ListSigningKeys(*conn));
    const Bytes fingerprint = RootKeyFingerprint(keep_root);
    for (const auto& k : keys) {
      // Never leave a signing key that no root key opens: check before removing anything.
      if (!UnsealSigningSecret(*conn, k.key_id, k.original, keep_root).ok()) {
        return Status::FailedPrecondition("audit signing key " + k.key_id +
                                          " has no copy under the root key to keep; nothing removed");
      }
      if (!k.original.empty() && !crypto::OpenSecret(keep_root, k.original, SigningKeyAad(k.key_id)).ok()) {
        COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                                conn->Prepare("UPDATE signing_keys SET sealed_secret = X'' WHERE key_id = ?"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(k.key_id));
        COFFRE_RETURN_IF_ERROR(st.Run());
      }
    }
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn->Prepare("DELETE FROM signing_key_seals WHERE root_fingerprint != ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(fingerprint));
    COFFRE_RETURN_IF_ERROR(st.Run());
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  // Moves the zeroed pages out of the WAL (best effort, as the keystore does).
  (void)conn->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return Status::Ok();
}

AuditLog::AuditLog(std::unique_ptr<db::Connection> conn, SigningKey key, AuditLogOptions options)
    : conn_(std::move(conn)),
      signing_key_(std::move(key)),
      options_(options),
      last_checkpoint_(std::chrono::steady_clock::now()) {
  writer_ = std::thread([this] { WriterLoop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  writer_cv_.notify_all();
  writer_.join();
  // Sign what is not covered yet, so a clean stop leaves no unsigned tail.
  std::lock_guard db_lock(db_mu_);
  if (Status st = CheckpointLocked(); !st.ok()) {
    spdlog::error("audit log: final checkpoint failed: {}", st.ToString());
  }
}

Status AuditLog::Record(const Event& event) {
  Pending p;
  p.event = &event;
  std::unique_lock lock(mu_);
  if (stopping_) {
    return Status::Unavailable("audit log is shutting down");
  }
  queue_.push_back(&p);
  writer_cv_.notify_one();
  done_cv_.wait(lock, [&] { return p.done; });
  return p.status;
}

void AuditLog::WaitForQueued() {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

std::unique_ptr<PendingRecord> AuditLog::Start(const Event& event) {
  auto handle = std::make_unique<PendingHandle>(*this, event);
  std::lock_guard lock(mu_);
  if (stopping_) {
    handle->pending().status = Status::Unavailable("audit log is shutting down");
    handle->pending().done = true;
    return handle;
  }
  queue_.push_back(&handle->pending());
  writer_cv_.notify_one();
  return handle;
}

void AuditLog::WriterLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // An unhealthy log tries again every second rather than at the checkpoint interval, so that
    // readiness (and key use without a request to retry it) comes back soon after space does.
    const auto interval = healthy_ ? options_.checkpoint_interval
                                   : std::min<std::chrono::steady_clock::duration>(options_.checkpoint_interval,
                                                                                   kUnhealthyRetryInterval);
    const auto due = last_checkpoint_ + interval;
    writer_cv_.wait_until(lock, due, [&] { return stopping_ || !queue_.empty(); });
    if (!queue_.empty()) {
      std::vector<Pending*> batch;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      writing_ = true;
      lock.unlock();
      Status st;
      {
        std::lock_guard db_lock(db_mu_);
        st = WriteBatch(batch);
      }
      NoteResult(st);
      lock.lock();
      for (Pending* p : batch) {
        p->status = st;
        p->done = true;
        // Under the lock, so that an OnDone() racing with this either sees `done` or is called here.
        if (p->on_done) {
          std::exchange(p->on_done, nullptr)();
        }
      }
      writing_ = false;
      if (st.ok()) {
        records_written_ += batch.size();
        ++commits_;
        uncovered_ += batch.size();
      } else {
        write_failures_ += batch.size();
      }
      done_cv_.notify_all();
    }
    if (stopping_ && queue_.empty()) {
      return;
    }
    const bool time_due = std::chrono::steady_clock::now() >= last_checkpoint_ + interval;
    const bool count_due = uncovered_ >= options_.checkpoint_every_records;
    if (count_due || (time_due && (uncovered_ > 0 || !healthy_))) {
      lock.unlock();
      Status st;
      {
        std::lock_guard db_lock(db_mu_);
        // An unhealthy log probes with a small write, so it turns healthy again by itself.
        st = CheckpointLocked();
        if (st.ok() && !healthy()) {
          st = Probe();
        }
      }
      if (!st.ok() && healthy()) {
        // Once: an unhealthy log retries every second, and NoteResult says when it recovers.
        spdlog::error("audit log: checkpoint failed: {}", st.ToString());
      }
      NoteResult(st);
      lock.lock();
      last_checkpoint_ = std::chrono::steady_clock::now();
      if (st.ok()) {
        uncovered_ = 0;
      }
    } else if (time_due) {
      last_checkpoint_ = std::chrono::steady_clock::now();
    }
  }
}

void AuditLog::NoteResult(const Status& st) {
  std::lock_guard lock(mu_);
  if (st.ok()) {
    if (!healthy_) {
      spdlog::info("audit log is writable again; key use resumes");
    }
    healthy_ = true;
    last_error_.clear();
    return;
  }
  if (healthy_) {
    spdlog::error("audit log cannot be written ({}); every key use is refused until it can", st.ToString());
  }
  healthy_ = false;
  last_error_ = st.ToString();
}

Status AuditLog::WriteBatch(const std::vector<Pending*>& batch) {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_ASSIGN_OR_RETURN(std::optional<Head> global, ReadHead(conn, "g"));
  Head g = global.value_or(Head{});
  std::map<std::string, Head> heads;
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (Pending* p : batch) {
    const std::string chain = ChainOf(p->event->tenant);
    auto it = heads.find(chain);
    if (it == heads.end()) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<Head> h, ReadHead(conn, chain));
      it = heads.emplace(chain, h.value_or(Head{})).first;
    }
    Head& head = it->second;
    audit::Record rec = RecordFromEvent(*p->event, head.seq + 1, now, head.hash);
    const Hash hash = RecordHash(rec);
    const Hash global_hash = GlobalLink(g.hash, g.seq + 1, hash);
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement ins,
        conn.PrepareCached("INSERT INTO records (gseq, seq, time_ms, tenant, key_id, key_version, operation, action, "
                           "bucket, object_key, object_id, request_id, access_key_id, client_address, outcome, prev, "
                           "hash, global_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(ins.BindAll(g.seq + 1, rec.seq, rec.time_ms, rec.tenant, rec.key_id, rec.key_version,
                                       rec.operation, rec.action, rec.bucket, rec.object_key, rec.object_id,
                                       rec.request_id, rec.access_key_id, rec.client_address, rec.outcome,
                                       ByteView(rec.prev), ByteView(hash), ByteView(global_hash)));
    COFFRE_RETURN_IF_ERROR(ins.Run());
    head.seq = rec.seq;
    head.hash = hash;
    g.seq += 1;
    g.hash = global_hash;
  }
  heads["g"] = g;
  for (const auto& [chain, head] : heads) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement up,
                            conn.PrepareCached("INSERT INTO heads (chain, seq, hash) VALUES (?, ?, ?) "
                                               "ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(up.BindAll(chain, head.seq, ByteView(head.hash)));
    COFFRE_RETURN_IF_ERROR(up.Run());
  }
  return tx.Commit();
}

Status AuditLog::Checkpoint() {
  Status st;
  {
    std::lock_guard db_lock(db_mu_);
    st = CheckpointLocked();
  }
  NoteResult(st);
  if (st.ok()) {
    std::lock_guard lock(mu_);
    uncovered_ = 0;
    last_checkpoint_ = std::chrono::steady_clock::now();
  }
  return st;
}

Status AuditLog::CheckpointLocked() {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  std::vector<std::pair<std::string, Head>> moved;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT chain, seq, hash FROM heads WHERE seq > checkpointed_seq ORDER BY chain"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      Head h;
      h.seq = static_cast<uint64_t>(st.ColumnInt64(1));
      h.hash = HashFromBlob(st.ColumnBlobView(2));
      moved.emplace_back(st.ColumnText(0), h);
    }
  }
  if (moved.empty()) {
    return Status::Ok();
  }
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (const auto& [chain, head] : moved) {
    audit::Checkpoint c;
    if (chain == "g") {
      c.scope = std::string(kScopeGlobal);
    } else {
      c.scope = std::string(kScopeTenant);
      c.tenant = chain.substr(2);
    }
    c.seq = head.seq;
    c.head = head.hash;
    c.time_ms = now;
    COFFRE_RETURN_IF_ERROR(SignCheckpoint(signing_key_, c));
    COFFRE_ASSIGN_OR_RETURN(db::Statement ins,
                            conn.PrepareCached("INSERT INTO checkpoints (scope, tenant, seq, head, time_ms, signer, "
                                               "signature) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(
        ins.BindAll(c.scope, c.tenant, c.seq, ByteView(c.head), c.time_ms, c.signer, ByteView(c.signature)));
    COFFRE_RETURN_IF_ERROR(ins.Run());
    COFFRE_ASSIGN_OR_RETURN(db::Statement up,
                            conn.PrepareCached("UPDATE heads SET checkpointed_seq = ? WHERE chain = ?"));
    COFFRE_RETURN_IF_ERROR(up.BindAll(head.seq, chain));
    COFFRE_RETURN_IF_ERROR(up.Run());
  }
  return tx.Commit();
}

Status AuditLog::Probe() {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_RETURN_IF_ERROR(conn.Exec("INSERT INTO probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1"));
  return tx.Commit();
}

bool AuditLog::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_;
}

std::string AuditLog::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

uint64_t AuditLog::records_written() const {
  std::lock_guard lock(mu_);
  return records_written_;
}

uint64_t AuditLog::write_failures() const {
  std::lock_guard lock(mu_);
  return write_failures_;
}

uint64_t AuditLog::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

Result<TenantExport> AuditLog::ExportTenant(const std::string& tenant, UnixMillis from_ms, UnixMillis to_ms) {
  if (from_ms > to_ms) {
    return Status::InvalidArgument("the time range is reversed (--from is after --to)");
  }
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  TenantExport out;
  out.tenant = tenant;
  out.public_key = signing_key_.public_key;
  uint64_t first = 0;
  uint64_t last = 0;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT min(seq), max(seq) FROM records WHERE tenant = ? "
                                                           "AND time_ms >= ? AND time_ms <= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, from_ms, to_ms));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnIsNull(0)) {
      return out;
    }
    first = static_cast<uint64_t>(st.ColumnInt64(0));
    last = static_cast<uint64_t>(st.ColumnInt64(1));
  }
  {
    // The first checkpoint at or after the last record signs everything up to it.
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT min(seq) FROM checkpoints WHERE scope = 'tenant' "
                                                           "AND tenant = ? AND seq >= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, last));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && !st.ColumnIsNull(0)) {
      last = static_cast<uint64_t>(st.ColumnInt64(0));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                         " FROM records WHERE tenant = ? AND seq >= ? AND seq <= ? ORDER BY seq"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, first, last));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.records.push_back(ReadRecord(st));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature FROM checkpoints "
                                         "WHERE scope = 'tenant' AND tenant = ? AND seq >= ? AND seq <= ? ORDER BY seq, id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, first, last));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.checkpoints.push_back(ReadCheckpoint(st));
    }
  }
  return out;
}

Result<uint64_t> AuditLog::VerifyStored() {
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  std::map<std::string, Head> tenants;
  Head global;
  COFFRE_ASSIGN_OR_RETURN(ChainPosition boundary, ReadBoundary(conn));
  global.seq = boundary.seq;
  global.hash = boundary.hash;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT tenant, seq, hash FROM archive_heads"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      Head& h = tenants[st.ColumnText(0)];
      h.seq = static_cast<uint64_t>(st.ColumnInt64(1));
      h.hash = HashFromBlob(st.ColumnBlobView(2));
    }
  }
  std::map<std::pair<std::string, uint64_t>, Hash> tenant_hash_at;  // only where checkpoints point
  std::map<uint64_t, Hash> global_hash_at;
  // Which positions checkpoints name, to check their heads while walking.
  std::map<std::pair<std::string, uint64_t>, bool> wanted;
  std::vector<audit::Checkpoint> checkpoints;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature "
                                                           "FROM checkpoints ORDER BY id"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      checkpoints.push_back(ReadCheckpoint(st));
      const auto& c = checkpoints.back();
      if (!VerifyCheckpoint(signing_key_.public_key, c)) {
        return Status::Corruption("checkpoint of " + c.scope + " chain '" + c.tenant + "' at seq " +
                                  std::to_string(c.seq) + " has an invalid signature");
      }
      wanted[{c.scope == kScopeGlobal ? std::string("\x01global") : c.tenant, c.seq}] = true;
    }
  }
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                                         ", gseq, hash, global_hash FROM records ORDER BY gseq"));
  uint64_t n = 0;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    audit::Record r = ReadRecord(st);
    const uint64_t gseq = static_cast<uint64_t>(st.ColumnInt64(15));
    const std::string where = "record " + std::to_string(gseq) + " (tenant '" + r.tenant + "' seq " +
                              std::to_string(r.seq) + ")";
    if (gseq != global.seq + 1) {
      return Status::Corruption(where + ": global sequence has a gap before it (records missing)");
    }
    Head& t = tenants[r.tenant];
    if (r.seq != t.seq + 1) {
      return Status::Corruption(where + ": tenant sequence has a gap or is out of order");
    }
    if (r.prev != t.hash) {
      return Status::Corruption(where + ": does not link to the tenant's previous record (altered or removed)");
    }
    const Hash h = RecordHash(r);
    if (HashFromBlob(st.ColumnBlobView(16)) != h) {
      return Status::Corruption(where + ": content does not match its stored hash (altered)");
    }
    const Hash gh = GlobalLink(global.hash, gseq, h);
    if (HashFromBlob(st.ColumnBlobView(17)) != gh) {
      return Status::Corruption(where + ": global chain link does not match (altered or reordered)");
    }
    t.seq = r.seq;
    t.hash = h;
    global.seq = gseq;
    global.hash = gh;
    if (wanted.count({r.tenant, r.seq}) != 0) {
      tenant_hash_at[{r.tenant, r.seq}] = h;
    }
    if (wanted.count({std::string("\x01global"), gseq}) != 0) {
      global_hash_at[gseq] = gh;
    }
    ++n;
  }
  for (const auto& c : checkpoints) {
    const bool is_global = c.scope == kScopeGlobal;
    const std::optional<Hash> at = [&]() -> std::optional<Hash> {
      if (is_global) {
        auto it = global_hash_at.find(c.seq);
        return it == global_hash_at.end() ? std::nullopt : std::optional<Hash>(it->second);
      }
      auto it = tenant_hash_at.find({c.tenant, c.seq});
      return it == tenant_hash_at.end() ? std::nullopt : std::optional<Hash>(it->second);
    }();
    if (!at) {
      return Status::Corruption("the " + c.scope + " checkpoint of '" + c.tenant + "' signs seq " +
                                std::to_string(c.seq) + ", which is missing from the log (records removed)");
    }
    if (*at != c.head) {
      return Status::Corruption("the " + c.scope + " checkpoint of '" + c.tenant + "' at seq " +
                                std::to_string(c.seq) + " does not match the records (altered)");
    }
  }
  return n;
}

Result<Archive> AuditLog::PrepareArchive(UnixMillis before_ms) {
  COFFRE_RETURN_IF_ERROR(Checkpoint());
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  Archive a;
  a.before_ms = before_ms;
  a.public_key = signing_key_.public_key;
  COFFRE_ASSIGN_OR_RETURN(a.start_global, ReadBoundary(conn));
  a.end_gseq = a.start_global.seq;
  {
    // The last signed global position whose record is older than before_ms.
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        conn.Prepare("SELECT max(c.seq) FROM checkpoints c JOIN records r ON r.gseq = c.seq "
                     "WHERE c.scope = 'global' AND r.time_ms < ? AND c.seq > ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(before_ms, a.start_global.seq));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnIsNull(0)) {
      return a;  // nothing to archive
    }
    a.end_gseq = static_cast<uint64_t>(st.ColumnInt64(0));
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT tenant, seq, hash FROM archive_heads"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      a.start_tenants[st.ColumnText(0)] =
          ChainPosition{static_cast<uint64_t>(st.ColumnInt64(1)), HashFromBlob(st.ColumnBlobView(2))};
    }
  }
  std::map<std::string, uint64_t> last_seq;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                         ", gseq, global_hash FROM records WHERE gseq > ? AND gseq <= ? ORDER BY gseq"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(a.start_global.seq, a.end_gseq));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      ArchivedRecord r;
      r.record = ReadRecord(st);
      r.gseq = static_cast<uint64_t>(st.ColumnInt64(15));
      r.global_hash = HashFromBlob(st.ColumnBlobView(16));
      last_seq[r.record.tenant] = r.record.seq;
      a.records.push_back(std::move(r));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature FROM checkpoints "
                                         "ORDER BY id"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      audit::Checkpoint c = ReadCheckpoint(st);
      const bool global_in = c.scope == kScopeGlobal && c.seq > a.start_global.seq && c.seq <= a.end_gseq;
      const auto it = last_seq.find(c.tenant);
      const uint64_t first = a.start_tenants.count(c.tenant) != 0 ? a.start_tenants[c.tenant].seq : 0;
      const bool tenant_in =
          c.scope == kScopeTenant && it != last_seq.end() && c.seq > first && c.seq <= it->second;
      if (global_in || tenant_in) {
        a.checkpoints.push_back(std::move(c));
      }
    }
  }
  return a;
}

Status AuditLog::Prune(const Archive& archive) {
  if (archive.end_gseq <= archive.start_global.seq || archive.records.empty()) {
    return Status::Ok();
  }
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_ASSIGN_OR_RETURN(ChainPosition boundary, ReadBoundary(conn));
  if (boundary.seq != archive.start_global.seq || boundary.hash != archive.start_global.hash) {
    return Status::Aborted("the audit log's archive boundary moved meanwhile (another archive?); nothing pruned");
  }
  const ArchivedRecord& last = archive.records.back();
  if (last.gseq != archive.end_gseq) {
    return Status::InvalidArgument("archive does not end at its end_gseq; nothing pruned");
  }
  std::map<std::string, ChainPosition> heads;
  for (const auto& r : archive.records) {
    heads[r.record.tenant] = ChainPosition{r.record.seq, RecordHash(r.record)};
  }
  for (const auto& [tenant, pos] : heads) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("INSERT INTO archive_heads (tenant, seq, hash) VALUES (?, ?, ?) "
                                         "ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, pos.seq, ByteView(pos.hash)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("INSERT INTO archive_boundary (id, gseq, hash) VALUES (1, ?, ?) "
                                         "ON CONFLICT (id) DO UPDATE SET gseq = excluded.gseq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq, ByteView(last.global_hash)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("DELETE FROM records WHERE gseq <= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("DELETE FROM checkpoints WHERE scope = 'global' AND seq <= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_RETURN_IF_ERROR(
      conn.Exec("DELETE FROM checkpoints WHERE scope = 'tenant' AND seq <= "
                "(SELECT h.seq FROM archive_heads h WHERE h.tenant = checkpoints.tenant)"));
  return tx.Commit();
}

}  // namespace coffre::audit
