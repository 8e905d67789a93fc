#include "stores.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <utility>

namespace coffre::server {
namespace {

std::string KeystorePath(const Config& config) { return config.data_dir + "/keystore.db"; }

}  // namespace

Result<SecretBytes> LoadRootKey(const Config& config, bool create) {
  const std::string keystore_path = KeystorePath(config);
  if (create) {
    std::error_code ec;
    if (!std::filesystem::exists(config.data_dir, ec)) {
      std::filesystem::create_directories(config.data_dir, ec);
      if (ec) {
        return Status::IOError("create data directory " + config.data_dir + ": " + ec.message());
      }
      ::chmod(config.data_dir.c_str(), 0700);  // the leaf holds the keystore: private to the service
    }
  } else {
    // Checked first, so that nobody is asked for a passphrase to open nothing.
    struct stat st {};
    if (::stat(keystore_path.c_str(), &st) != 0) {
      return Status::NotFound("no keystore in " + config.data_dir + " (start the daemon once, or check --data-dir)");
    }
  }
  if (config.root_key_source == "credential") {
    return keystore::LoadRootKeyCredential(config.root_key_credential);
  }
  if (config.root_key_source == "passphrase") {
    struct stat existing {};
    const bool fresh = ::stat(keystore_path.c_str(), &existing) != 0;
    auto passphrase = config.passphrase_fd >= 0 ? keystore::ReadPassphraseFromFd(config.passphrase_fd)
                                                : keystore::PromptPassphrase(/*confirm=*/create && fresh);
    if (!passphrase.ok()) {
      return passphrase.status();
    }
    return keystore::DeriveRootKeyFromPassphrase(keystore_path, *passphrase, create);
  }
  const std::string key_file = config.ResolvedRootKeyFile();
  struct stat st {};
  if (create && config.create_root_key && ::stat(key_file.c_str(), &st) != 0 && errno == ENOENT) {
    COFFRE_RETURN_IF_ERROR(keystore::CreateRootKeyFile(key_file));
  }
  return keystore::LoadRootKeyFile(key_file);
}

Result<std::unique_ptr<keystore::Keystore>> OpenKeystoreWithRootKey(const Config& config, const SecretBytes& root,
                                                                    bool create) {
  const std::string keystore_path = KeystorePath(config);
  if (!create) {
    // Keystore::Open would create an empty keystore that the key then "matches".
    struct stat st {};
    if (::stat(keystore_path.c_str(), &st) != 0) {
      return Status::NotFound("no keystore in " + config.data_dir + " (start the daemon once, or check --data-dir)");
    }
  }
  auto opened = keystore::Keystore::Open(keystore_path, root);
  if (!opened.ok() && opened.status().code() == StatusCode::kPermissionDenied) {
    const std::string what = config.root_key_source == "passphrase" ? "wrong passphrase"
                             : config.root_key_source == "credential"
                                 ? "wrong root key in credential " + config.root_key_credential
                                 : "wrong root key in " + config.ResolvedRootKeyFile();
    return Status::PermissionDenied(what + ": it does not match the keystore " + keystore_path +
                                    " (nothing was changed)");
  }
  return opened;
}

Result<std::unique_ptr<keystore::Keystore>> OpenKeystore(const Config& config, bool create) {
  COFFRE_ASSIGN_OR_RETURN(SecretBytes root, LoadRootKey(config, create));
  return OpenKeystoreWithRootKey(config, root, create);
}

Result<Stores> OpenStores(const Config& config, bool for_daemon) {
  Stores s;
  COFFRE_ASSIGN_OR_RETURN(s.root_key, LoadRootKey(config, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.keystore, OpenKeystoreWithRootKey(config, s.root_key, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.catalog, catalog::Catalog::Open(config.data_dir + "/catalog.db"));
  if (config.storage.backend != "local") {
    // The configuration is validated in full, but blobs cannot go upstream yet: refuse rather than
    // keep them on the local disk the operator asked not to hold them.
    return Status::FailedPrecondition("storage backend \"" + config.storage.backend +
                                      "\" is not available in this version; use \"local\"");
  }
  storage::LocalBlobStoreOptions blob_options;
  blob_options.max_packed_blob = config.packed_blob_max_bytes;
  COFFRE_ASSIGN_OR_RETURN(s.blobs, storage::OpenLocalBlobStore(config.data_dir, std::move(blob_options)));
  return s;
}

service::DualControlPolicy DualControlPolicyOf(const Config& config) {
  service::DualControlPolicy policy;
  policy.required = config.dual_control;
  policy.approval_ttl_ms = static_cast<int64_t>(config.dual_control_approval_minutes) * 60 * 1000;
  return policy;
}

}  // namespace coffre::server
