// Root key files: the root key reaches the process from a file (typically a systemd credential,
// which systemd exposes with mode 0400). The file must be private to its owner.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "coffre/common/bytes.h"
#include "coffre/common/secret_file.h"
#include "coffre/common/unique_fd.h"
#include "coffre/crypto/aead.h"
#include "coffre/keystore/keystore.h"

namespace coffre::keystore {
namespace {

constexpr size_t kRawKeySize = crypto::kKeySize;
constexpr size_t kHexKeySize = 2 * kRawKeySize;

Status SyncParentDirectory(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Status::FromErrno(errno, "open directory " + dir);
  }
  if (::fsync(fd.get()) != 0) {
    return Status::FromErrno(errno, "fsync directory " + dir);
  }
  return Status::Ok();
}

}  // namespace

Result<SecretBytes> LoadRootKeyFile(const std::string& path) {
  // Read up to the longest valid content (hex and a CRLF); anything longer is refused.
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes buf, ReadPrivateFile(path, "root key file", kHexKeySize + 2));
  std::span<const uint8_t> content = buf.Reveal();

  if (content.size() == kRawKeySize) {
    // 32 hex characters are a 128-bit key written in hex by mistake, not 256 random bits
    // (a random 32-byte key is all hex digits with probability about 1e-34).
    if (IsHex(AsChars(content))) {
      return Status::InvalidArgument("root key file " + path +
                                     " holds 32 hex characters (128 bits); 64 hex characters are required");
    }
    return SecretBytes(content);
  }
  if (!content.empty() && content.back() == '\n') {
    content = content.first(content.size() - 1);
    if (!content.empty() && content.back() == '\r') {
      content = content.first(content.size() - 1);
    }
  }
  SecretBytes key(kRawKeySize);
  if (!HexDecodeInto(AsChars(content), key.RevealMutable())) {
    return Status::InvalidArgument("root key file " + path + " must hold 32 raw bytes or 64 hex characters");
  }
  return key;
}

Status CreateRootKeyFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      return Status::AlreadyExists("root key file " + path + " already exists");
    }
    return Status::FromErrno(errno, "create root key file " + path);
  }
  auto fail = [&](int err, std::string_view what) {
    const Status st = Status::FromErrno(err, std::string(what) + " root key file " + path);
    // Never leave a partial key file behind for someone to load later.
    ::unlink(path.c_str());
    return st;
  };

  const SecretBytes key = SecretBytes::Random(kRawKeySize);
  SecretBytes text(kHexKeySize + 1);
  HexEncodeInto(key.Reveal(), text.RevealMutable().first(kHexKeySize));
  text.RevealMutable()[kHexKeySize] = '\n';

  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd.get(), text.Reveal().data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errno, "write");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    return fail(errno, "fsync");
  }
  if (fd.Close() != 0) {
    return fail(errno, "close");
  }
  // The file's name must be durable too, or a crash could lose the only copy of the key.
  return SyncParentDirectory(path);
}

}  // namespace coffre::keystore
