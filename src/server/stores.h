#pragma once

// Opens the data directory's stores (root key, keystore, catalog, blobs) for the daemon and for
// the admin subcommands, which run beside a live daemon.
//
// The root key is loaded once per process (LoadRootKey): a passphrase is read or asked once, and
// the same key then opens the keystore and the audit log (audit_store.h).

#include <memory>

#include "coffre/catalog/catalog.h"
#include "coffre/common/secret.h"
#include "coffre/keystore/keystore.h"
#include "coffre/server/config.h"
#include "coffre/service/dual_control.h"
#include "coffre/storage/blob_store.h"
#include "coffre/upstream/s3_client.h"

namespace coffre::server {

struct Stores {
  std::unique_ptr<keystore::Keystore> keystore;
  std::unique_ptr<catalog::Catalog> catalog;
  std::unique_ptr<storage::BlobStore> blobs;
  // The client of the upstream bucket, inside `blobs` (null for the local store): for the
  // readiness check and the metrics. Valid as long as `blobs`.
  upstream::S3Client* upstream = nullptr;
  // The root key the keystore accepted, kept so that the audit log can be opened with it
  // (OpenAuditLog) without loading it a second time; clear it once handed over.
  SecretBytes root_key;
};

// Loads the root key from the configured source (docs/KEYS.md): the key file, the systemd
// credential, or the passphrase (from config.passphrase_fd, else the terminal) stretched with the
// keystore's Argon2id parameters. With `create`, the data directory, (when create_root_key) the
// key file, and a new passphrase keystore's parameters may be created; without it, NotFound when
// the data directory holds no keystore (before any passphrase is asked). The key is not yet
// checked against the keystore: OpenKeystoreWithRootKey does that.
Result<SecretBytes> LoadRootKey(const Config& config, bool create);
// Opens (with `create`, creates) the keystore with a root key from LoadRootKey; a key that does
// not match it is refused with PermissionDenied naming the source ("wrong passphrase", "wrong
// root key in ...").
Result<std::unique_ptr<keystore::Keystore>> OpenKeystoreWithRootKey(const Config& config, const SecretBytes& root,
                                                                    bool create = false);
// LoadRootKey, then OpenKeystoreWithRootKey: for commands that need the keystore only.
Result<std::unique_ptr<keystore::Keystore>> OpenKeystore(const Config& config, bool create);

// The upstream bucket of a "s3" storage config, reached: the secret access key read from its file
// (private to the service user, like the root key file), the client made, and the bucket answering
// HEAD, so that a wrong endpoint, secret or bucket stops a start with a message rather than
// failing every request. Messages name the endpoint and the bucket, never the secret. Without
// `probe`, the bucket is not asked: for commands that may have to work while it is unreachable.
Result<std::unique_ptr<upstream::S3Client>> ConnectUpstream(const StorageConfig& storage, bool probe = true);

// The blob store the configuration names: the data directory's, or the upstream bucket
// (ConnectUpstream).
Result<std::unique_ptr<storage::BlobStore>> OpenBlobStore(const Config& config);

// The daemon may create the data directory and (when configured) the root key; admin commands
// only open what exists. Stores::root_key holds the root key for OpenAuditLog. An upstream bucket
// is asked HEAD first (ConnectUpstream) unless `probe_upstream` is false.
Result<Stores> OpenStores(const Config& config, bool for_daemon, bool probe_upstream = true);

// The config's dual control settings (dual_control, dual_control_approval_minutes).
service::DualControlPolicy DualControlPolicyOf(const Config& config);

}  // namespace coffre::server
