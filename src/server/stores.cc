#include "stores.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "coffre/common/secret_file.h"
#include "coffre/storage/s3_blob_store.h"

namespace coffre::server {
namespace {

std::string KeystorePath(const Config& config) { return config.data_dir + "/keystore.db"; }

// An access key secret is 40 characters at AWS and rarely much longer elsewhere.
constexpr size_t kMaxUpstreamSecretSize = 1024;

// The secret as written by `echo SECRET > FILE` or an editor: without its final line break.
SecretBytes WithoutTrailingNewline(const SecretBytes& secret) {
  auto bytes = secret.Reveal();
  size_t n = bytes.size();
  while (n > 0 && (bytes[n - 1] == '\n' || bytes[n - 1] == '\r')) --n;
  return SecretBytes(bytes.first(n));
}

// The configured blob store and, when it is an upstream bucket, the client inside it.
Result<std::unique_ptr<storage::BlobStore>> OpenBlobStoreReturningClient(const Config& config, bool probe,
                                                                         upstream::S3Client** client_out) {
  if (config.storage.backend == "s3") {
    COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<upstream::S3Client> client, ConnectUpstream(config.storage, probe));
    upstream::S3Client* const client_in_store = client.get();
    storage::S3BlobStoreOptions options;
    options.prefix = config.storage.prefix;
    COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<storage::BlobStore> store,
                            storage::OpenS3BlobStore(std::move(client), std::move(options)));
    if (client_out != nullptr) *client_out = client_in_store;
    return store;
  }
  storage::LocalBlobStoreOptions options;
  options.max_packed_blob = config.packed_blob_max_bytes;
  return storage::OpenLocalBlobStore(config.data_dir, std::move(options));
}

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

Result<Stores> OpenStores(const Config& config, bool for_daemon, bool probe_upstream) {
  Stores s;
  COFFRE_ASSIGN_OR_RETURN(s.root_key, LoadRootKey(config, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.keystore, OpenKeystoreWithRootKey(config, s.root_key, for_daemon));
  COFFRE_ASSIGN_OR_RETURN(s.catalog, catalog::Catalog::Open(config.data_dir + "/catalog.db"));
  COFFRE_ASSIGN_OR_RETURN(s.blobs, OpenBlobStoreReturningClient(config, probe_upstream, &s.upstream));
  return s;
}

Result<std::unique_ptr<upstream::S3Client>> ConnectUpstream(const StorageConfig& storage, bool probe) {
  const std::string where = "upstream bucket \"" + storage.bucket + "\" at " + storage.endpoint;
  upstream::S3ClientOptions options = UpstreamClientOptions(storage);
  COFFRE_ASSIGN_OR_RETURN(SecretBytes secret, ReadPrivateFile(storage.secret_access_key_file,
                                                              "upstream secret key file", kMaxUpstreamSecretSize));
  options.secret_access_key = WithoutTrailingNewline(secret);
  if (options.secret_access_key.empty()) {
    return Status::InvalidArgument("upstream secret key file " + storage.secret_access_key_file + " is empty");
  }
  auto client = upstream::S3Client::Create(std::move(options));
  if (!client.ok()) return Status(client.status().code(), where + ": " + client.status().message());
  if (!probe) return std::move(client).value();
  if (Status st = (*client)->HeadBucket(); !st.ok()) {
    // A HEAD answer has no body to say why: say what the status usually means.
    std::string hint;
    if (st.code() == StatusCode::kPermissionDenied) {
      hint =
          " (the upstream refused these credentials: check access_key_id, the secret file, and that the key "
          "may use this bucket)";
    } else if (st.code() == StatusCode::kNotFound) {
      hint = " (no such bucket upstream: Coffre does not create it)";
    }
    return Status(st.code(), where + ": " + st.message() + hint);
  }
  return std::move(client).value();
}

Result<std::unique_ptr<storage::BlobStore>> OpenBlobStore(const Config& config) {
  return OpenBlobStoreReturningClient(config, /*probe=*/true, nullptr);
}

service::DualControlPolicy DualControlPolicyOf(const Config& config) {
  service::DualControlPolicy policy;
  policy.required = config.dual_control;
  policy.approval_ttl_ms = static_cast<int64_t>(config.dual_control_approval_minutes) * 60 * 1000;
  return policy;
}

}  // namespace coffre::server
