#include "stores.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

namespace coffre::server {

Result<std::unique_ptr<keystore::Keystore>> OpenKeystore(const Config& config, bool create) {
  if (create) {
    std::error_code ec;
    if (!std::filesystem::exists(config.data_dir, ec)) {
      std::filesystem::create_directories(config.data_dir, ec);
      if (ec) return Status::IOError("create data directory " + config.data_dir + ": " + ec.message());
      ::chmod(config.data_dir.c_str(), 0700);  // the leaf holds the keystore: private to the service
    }
  } else {
    struct stat st {};
    if (::stat((config.data_dir + "/keystore.db").c_str(), &st) != 0) {
      return Status::NotFound("no keystore in " + config.data_dir + " (start the daemon once, or check --data-dir)");
    }
  }
  const std::string keystore_path = config.data_dir + "/keystore.db";
  SecretBytes root;
  if (config.root_key_source == "credential") {
    COFFRE_ASSIGN_OR_RETURN(root, keystore::LoadRootKeyCredential(config.root_key_credential));
  } else if (config.root_key_source == "passphrase") {
    struct stat existing {};
    const bool fresh = ::stat(keystore_path.c_str(), &existing) != 0;
    auto passphrase = config.passphrase_fd >= 0 ? keystore::ReadPassphraseFromFd(config.passphrase_fd)
                                                : keystore::PromptPassphrase(/*confirm=*/create && fresh);
    if (!passphrase.ok()) {
      return passphrase.status();
    }
    COFFRE_ASSIGN_OR_RETURN(root, keystore::DeriveRootKeyFromPassphrase(keystore_path, *passphrase, create));
  } else {
    const std::string key_file = config.ResolvedRootKeyFile();
    struct stat st {};
    if (create && config.create_root_key && ::stat(key_file.c_str(), &st) != 0 && errno == ENOENT) {
      COFFRE_RETURN_IF_ERROR(keystore::CreateRootKeyFile(key_file));
    }
    COFFRE_ASSIGN_OR_RETURN(root, keystore::LoadRootKeyFile(key_file));
  }
  auto opened = keystore::Keystore::Open(keystore_path, std::move(root));
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

Result<Stores> OpenStores(const Config& config, bool for_daemon) {
  Stores s;
  COFFRE_ASSIGN_OR_RETURN(s.keystore, OpenKeystore(config, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.catalog, catalog::Catalog::Open(config.data_dir + "/catalog.db"));
  COFFRE_ASSIGN_OR_RETURN(s.blobs, storage::OpenLocalBlobStore(config.data_dir));
  return s;
}

}  // namespace coffre::server
