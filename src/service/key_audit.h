#pragma once

// Key-usage auditing inside the object service (docs/AUDIT.md): builds the audit events of key
// uses and enforces fail-closed use. Private to the service module.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/catalog/catalog.h"
#include "coffre/service/object_service.h"

namespace coffre::service::internal {

// The event of a key use on an object of `bucket`.
audit::Event KeyEvent(audit::Operation operation, const catalog::Bucket& bucket, const std::string& key,
                      const std::string& object_id, ByteView tenant_key_id, uint32_t key_version,
                      const RequestInfo* request);

// The event of a key lifecycle change (no bucket or object): key_id is the key's id (the tenant
// id for its default key, docs/KEYS.md).
audit::Event LifecycleEvent(audit::Operation operation, const keystore::KeyRef& key, uint32_t key_version,
                            const RequestInfo& request);

// Records every event and returns each one's status, in order. The calls are made concurrently
// so that the log's writer commits them in a few transactions rather than one fsync each (rewrap
// records a whole batch at once). No recorder: every status is OK.
std::vector<Status> RecordEach(audit::Recorder* recorder, const std::vector<audit::Event>& events);

// Records a successful key use before the key is used. Returns the error the service call must
// fail with when the record cannot be made durable (fail-closed: the caller must then drop the
// key unused). No recorder configured: nothing to do.
std::optional<Error> RecordKeyUse(audit::Recorder* recorder, const audit::Event& event);

// The same in two steps, so the record's fsync overlaps with work nobody can see yet
// (Recorder::Start): StartKeyUse queues the record (nullptr without a recorder); AwaitKeyUse
// returns the error the service call must fail with when it could not be made durable, and the
// caller then discards what it computed with the key (an unpublished blob, undelivered bytes).
std::unique_ptr<audit::PendingRecord> StartKeyUse(audit::Recorder* recorder, const audit::Event& event);
std::optional<Error> AwaitKeyUse(audit::PendingRecord* pending, const audit::Event& event);

// Records a key operation that failed (`status`: Corruption becomes an integrity failure). Best
// effort: the call is failing anyway; a record that cannot be written is logged.
void RecordKeyFailure(audit::Recorder* recorder, audit::Event event, const Status& status);

// Wraps a reader so that a segment failing its integrity check is recorded (once per reader).
std::unique_ptr<ObjectReader> AuditReads(std::unique_ptr<ObjectReader> reader, audit::Recorder* recorder,
                                         audit::Event event);

}  // namespace coffre::service::internal
