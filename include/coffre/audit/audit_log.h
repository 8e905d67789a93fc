#pragma once

// The auditors' key-usage log (docs/AUDIT.md): an SQLite database of its own (WAL,
// synchronous=FULL) holding one hash chain per tenant plus a global chain over every record, and
// checkpoints of the chain heads signed with an Ed25519 key whose private half is stored sealed
// under a key derived from the root key.
//
// Durability and cost: Record() hands the event to one writer thread, which commits whatever has
// queued up in one transaction (group commit: one fsync for many records) and wakes every caller
// of that batch once it is durable. A caller never returns before its record is durable, so a key
// is used only after its record exists; if the batch cannot be committed every caller in it gets
// the error (fail-closed) and the log reports itself unhealthy until a later write succeeds.
//
// Several processes may append (the daemon, admin commands): each batch reads what others
// appended inside its write transaction, and checks it links to the heads this process knows.
//
// Integrity: the log keeps the last state it signed (every chain head and the archive boundary)
// in memory and, signed, in audit.db. Open proves the stored chain still extends that state; a
// log that does not (records removed, renumbered or relinked; the signed state or the signing key
// removed) is refused: it opens, but every record, checkpoint and export fails, healthy() is false
// and integrity_error() says why. Nothing is signed that does not extend the last signed state.
//
// Thread safety: every method may be called concurrently.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coffre/audit/archive.h"
#include "coffre/audit/event.h"
#include "coffre/audit/record.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::db {
class Connection;
}

namespace coffre::audit {

struct AuditLogOptions {
  // A checkpoint is signed once this many records were appended since the last one ...
  uint32_t checkpoint_every_records = 1000;
  // ... or once this much time has passed with records not yet covered.
  std::chrono::milliseconds checkpoint_interval{std::chrono::seconds(60)};
  // How long a write waits for another process's lock on audit.db before failing (Unavailable).
  int busy_timeout_ms = 2000;
  // Most records committed in one transaction.
  size_t max_batch = 4096;
  const Clock* clock = &Clock::System();
};

// What an export contains for one tenant (see bundle.h for the file format).
struct TenantExport {
  std::string tenant;
  std::vector<Record> records;          // by seq, contiguous
  std::vector<Checkpoint> checkpoints;  // the tenant's checkpoints over those records, by seq
  Bytes public_key;
};

class AuditLog final : public Recorder {
 public:
  // Opens (creating if needed) the log at `path`. The signing key is created on first open and
  // sealed under a key derived from `root_key` (a copy an earlier version sealed under `root_key`
  // itself is re-sealed so, atomically, at open); a later open with another root key fails with
  // PermissionDenied, and a log that holds records but no signing key fails with Corruption (no
  // new key is made). A log whose stored chain fails the integrity check opens refused (see
  // integrity_error()).
  static Result<std::unique_ptr<AuditLog>> Open(const std::string& path, const SecretBytes& root_key,
                                                AuditLogOptions options = {});

  // Root key rotation (docs/KEYS.md), crash-safe without a transaction shared with the keystore:
  // AddRootKeySeal stores a second copy of every signing key's private half, sealed under
  // `new_root` (opened with `current_root`; PermissionDenied if it does not open), keyed by a
  // fingerprint of the root key; from then on Open accepts either root key. Once the keystore has
  // committed the new root key, DropRootKeySealsExcept removes every copy that `keep_root` does
  // not open (FailedPrecondition, nothing removed, if a signing key would be left without one).
  // Both work on an existing log (`path` must exist) and are idempotent.
  static Status AddRootKeySeal(const std::string& path, const SecretBytes& current_root, const SecretBytes& new_root);
  static Status DropRootKeySealsExcept(const std::string& path, const SecretBytes& keep_root);
  // Signs a last checkpoint if records are uncovered, then stops the writer.
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends the event and returns once it is durable. Unavailable / NoSpace / IOError when it
  // could not be written: the caller must not use the key.
  Status Record(const Event& event) override;
  // Queues the event for the next group commit and returns at once; Wait() (or the handle's
  // destructor) blocks until that commit is done.
  std::unique_ptr<PendingRecord> Start(const Event& event) override;
  // Returns once every record queued so far is done, so that no OnDone() callback runs after
  // this: a daemon calls it once nothing can queue records any more, before the executors those
  // callbacks post to are destroyed.
  void WaitForQueued();

  // Signs a checkpoint of every chain head that moved since the last one (also of records other
  // processes appended). No-op when nothing moved.
  Status Checkpoint();

  // False since the last failed write, until a write (or the writer's periodic probe) succeeds;
  // always false for a refused log.
  bool healthy() const;
  // Why the log refuses to write and sign (the first record or state that failed the integrity
  // check), or "" when it does not.
  std::string integrity_error() const;
  // The last write error ("" when healthy). Never carries key material.
  std::string last_error() const;
  // Records written since open, and write failures since open (for metrics).
  uint64_t records_written() const;
  uint64_t write_failures() const;
  // Transactions (each one flush) that wrote those records: records per commit tells how well
  // group commit works.
  uint64_t commits() const;

  const Bytes& public_key() const { return signing_key_.public_key; }

  // The tenant's records with from_ms <= time <= to_ms, extended forward to the first checkpoint
  // that covers the last of them (so the whole export is signed), with the checkpoints among them.
  // Call Checkpoint() first to cover the most recent records.
  Result<TenantExport> ExportTenant(const std::string& tenant, UnixMillis from_ms, UnixMillis to_ms);

  // Reads the whole database and checks every chain link, the global chain and every checkpoint
  // signature: for `coffre audit verify --data-dir`. Returns the number of records checked.
  Result<uint64_t> VerifyStored();

  // Retention. PrepareArchive signs the heads, then gathers every record from the current archive
  // boundary up to the last signed global checkpoint whose record is older than before_ms (empty
  // when there is none). Prune then deletes exactly those records and their checkpoints and moves
  // the boundary, so the live log verifies from there on; call it only once the archive is safely
  // written and verified. Aborted if another archive moved the boundary meanwhile.
  Result<Archive> PrepareArchive(UnixMillis before_ms);
  Status Prune(const Archive& archive);

  // A position in every chain: the global one and each tenant's.
  struct ChainState {
    ChainPosition global;
    std::map<std::string, ChainPosition> tenants;
  };
  // A signed statement of the chain heads and the archive boundary (audit_log.cc).
  struct SignedState;

 private:
  struct Pending;
  class PendingHandle;
  AuditLog(std::unique_ptr<db::Connection> conn, SigningKey key, AuditLogOptions options);

  void StartWriter();
  // Under db_mu_: the integrity check at open (Corruption when it fails).
  Status Load();
  Result<SignedState> UpgradeLocked();
  Status SyncLocked();
  Status SyncOrRefuseLocked();
  Result<uint64_t> VerifyAllLocked(ChainState& chain, const SignedState* against);
  Status EnsureTenantCheckpoint(const std::string& tenant, const ChainPosition& pos, UnixMillis now);
  Status InsertCheckpoint(audit::Checkpoint& checkpoint);
  void Refuse(const std::string& why);
  // OK, or `code` with the integrity error when the log is refused.
  Status RefusedStatus(StatusCode code) const;

  void WriterLoop();
  Status WriteBatch(const std::vector<Pending*>& batch);
  Status CheckpointLocked();
  Status Probe();
  void NoteResult(const Status& st);

  std::unique_ptr<db::Connection> conn_;  // guarded by db_mu_
  std::mutex db_mu_;
  SigningKey signing_key_;
  AuditLogOptions options_;
  ChainState known_;                     // the stored chain as this process verified it; db_mu_
  std::unique_ptr<SignedState> signed_;  // the last signed state; db_mu_

  mutable std::mutex mu_;
  std::condition_variable writer_cv_;
  std::condition_variable done_cv_;
  std::deque<Pending*> queue_;
  bool writing_ = false;  // a batch taken off queue_ is being committed
  bool stopping_ = false;
  bool healthy_ = true;
  std::string last_error_;
  std::string refused_;  // the integrity error; never cleared
  uint64_t records_written_ = 0;
  uint64_t write_failures_ = 0;
  uint64_t commits_ = 0;
  uint64_t uncovered_ = 0;  // records appended since the last checkpoint
  std::chrono::steady_clock::time_point last_checkpoint_;
  std::thread writer_;
};

}  // namespace coffre::audit
