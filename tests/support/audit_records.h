#pragma once

// The actions of the records of one operation in an audit log on disk, oldest first: for tests
// that check what a command recorded. Signs the chain heads (an archive is prepared, not written).

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "coffre/audit/archive.h"
#include "coffre/audit/audit_log.h"
#include "coffre/audit/event.h"

namespace coffre::test_support {

inline std::vector<std::string> AuditedActions(const std::string& audit_path, const SecretBytes& root,
                                               audit::Operation operation) {
  std::vector<std::string> out;
  auto log = audit::AuditLog::Open(audit_path, root);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) {
    return out;
  }
  auto archive = (*log)->PrepareArchive(std::numeric_limits<UnixMillis>::max());
  EXPECT_TRUE(archive.ok()) << archive.status().ToString();
  if (!archive.ok()) {
    return out;
  }
  for (const auto& r : archive->records) {
    if (r.record.operation == audit::OperationName(operation)) {
      out.push_back(r.record.action);
    }
  }
  return out;
}

}  // namespace coffre::test_support
