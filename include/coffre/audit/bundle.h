#pragma once

// Auditors' export bundles (docs/AUDIT.md, "Export bundle"): one file holding a tenant's records,
// the signed checkpoints that cover them and the public key, in JSON Lines or CSV, and the offline
// verifier that checks such a file against a public key obtained out of band.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/audit/audit_log.h"
#include "coffre/audit/record.h"
#include "coffre/audit/verify.h"
#include "coffre/common/status.h"

namespace coffre::audit {

enum class BundleFormat { kJsonl, kCsv };

struct BundleInfo {
  std::string tenant;       // tenant id
  std::string tenant_name;  // informational
  UnixMillis from_ms = 0;
  UnixMillis to_ms = 0;
  UnixMillis generated_ms = 0;
};

// The bundle file's bytes.
std::string EncodeBundle(const TenantExport& data, const BundleInfo& info, BundleFormat format);

// The README written beside a bundle: what it holds and how to verify it.
std::string BundleReadme(const BundleInfo& info, std::string_view bundle_file_name, ByteView public_key);

struct ParsedBundle {
  BundleInfo info;
  Bytes public_key;  // the key the bundle says signed it (informational: verify with your own copy)
  TenantExport data;
  std::vector<size_t> record_lines;  // line of each record in the file, for messages
};

// InvalidArgument for a file that is not a Coffre audit bundle (foreign, malformed, truncated
// mid-line), naming the line.
Result<ParsedBundle> ParseBundle(std::string_view text);

// Checks the chain and the checkpoints against `public_key`. A bundle whose embedded key differs
// from `public_key` fails with InvalidArgument ("signed by another key") before any check.
Result<VerifyReport> VerifyBundle(const ParsedBundle& bundle, ByteView public_key);

}  // namespace coffre::audit
