#include "stores.h"

#include <sys/stat.h>

#include <cerrno>

namespace coffre::server {

Result<std::unique_ptr<keystore::Keystore>> OpenKeystore(const Config& config, bool create) {
  if (create) {
    if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "create data directory " + config.data_dir);
    }
  } else {
    struct stat st {};
    if (::stat((config.data_dir + "/keystore.db").c_str(), &st) != 0) {
      return Status::NotFound("no keystore in " + config.data_dir + " (start the daemon once, or check --data-dir)");
    }
  }
  const std::string key_file = config.ResolvedRootKeyFile();
  struct stat st {};
  if (create && config.create_root_key && ::stat(key_file.c_str(), &st) != 0 && errno == ENOENT) {
    COFFRE_RETURN_IF_ERROR(keystore::CreateRootKeyFile(key_file));
  }
  COFFRE_ASSIGN_OR_RETURN(SecretBytes root, keystore::LoadRootKeyFile(key_file));
  return keystore::Keystore::Open(config.data_dir + "/keystore.db", std::move(root));
}

Result<Stores> OpenStores(const Config& config, bool for_daemon) {
  Stores s;
  COFFRE_ASSIGN_OR_RETURN(s.keystore, OpenKeystore(config, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.catalog, catalog::Catalog::Open(config.data_dir + "/catalog.db"));
  COFFRE_ASSIGN_OR_RETURN(s.blobs, storage::OpenLocalBlobStore(config.data_dir));
  return s;
}

}  // namespace coffre::server
