// Root key sources besides a plain key file: a systemd credential, and a passphrase stretched
// with Argon2id whose salt and parameters live in the keystore (they are not secret; the
// keystore's check value then tells a wrong passphrase at start-up).

#include <fcntl.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "coffre/crypto/aead.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"

namespace coffre::keystore {
namespace {

constexpr std::string_view kKdfName = internal::kPassphraseKdfName;
constexpr uint8_t kKdfFormat = 1;  // 1: Argon2id v1.3; then opslimit, memlimit (8 bytes BE), salt
constexpr size_t kMaxPassphrase = 1024;

Bytes EncodeKdf(const PassphraseKdfParams& p, ByteView salt) {
  // Sized once and filled in place: appending the salt to a 17-byte vector trips GCC 12's false
  // -Warray-bounds at -O3 (Release builds).
  Bytes out(1 + 8 + 8 + salt.size());
  out[0] = kKdfFormat;
  for (int i = 0; i < 8; ++i) {
    out[1 + i] = static_cast<uint8_t>(p.opslimit >> (56 - 8 * i));
    out[9 + i] = static_cast<uint8_t>(p.memlimit >> (56 - 8 * i));
  }
  std::copy(salt.begin(), salt.end(), out.begin() + 17);
  return out;
}

Status DecodeKdf(ByteView b, PassphraseKdfParams* p, Bytes* salt) {
  if (b.size() != 1 + 8 + 8 + crypto_pwhash_SALTBYTES || b[0] != kKdfFormat) {
    return Status::Corruption("the keystore's passphrase parameters are malformed");
  }
  p->opslimit = 0;
  p->memlimit = 0;
  for (int i = 0; i < 8; ++i) {
    p->opslimit = p->opslimit << 8 | b[1 + i];
    p->memlimit = p->memlimit << 8 | b[9 + i];
  }
  salt->assign(b.begin() + 17, b.end());
  return Status::Ok();
}

// Reads up to kMaxPassphrase bytes until EOF or a newline.
Result<SecretBytes> ReadLine(int fd, bool stop_at_newline) {
  SecretBytes buf(kMaxPassphrase + 1);
  size_t len = 0;
  while (len < buf.size()) {
    const ssize_t n = ::read(fd, buf.RevealMutable().data() + len, stop_at_newline ? 1 : buf.size() - len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno(errno, "read passphrase");
    }
    if (n == 0) {
      break;
    }
    len += static_cast<size_t>(n);
    if (stop_at_newline && buf.Reveal()[len - 1] == '\n') {
      break;
    }
  }
  if (len > kMaxPassphrase) {
    return Status::InvalidArgument("passphrase longer than 1024 bytes");
  }
  std::span<const uint8_t> text = buf.Reveal().first(len);
  if (!text.empty() && text.back() == '\n') {
    text = text.first(text.size() - 1);
  }
  if (text.empty()) {
    return Status::InvalidArgument("empty passphrase (nothing to read: closed input?)");
  }
  return SecretBytes(text);
}

// Argon2id over the passphrase with these parameters and salt.
Result<SecretBytes> Stretch(const SecretBytes& passphrase, const PassphraseKdfParams& params, ByteView salt) {
  if (params.opslimit < crypto_pwhash_OPSLIMIT_MIN || params.memlimit < crypto_pwhash_MEMLIMIT_MIN ||
      params.memlimit > (1ull << 34)) {
    return Status::Corruption("the keystore's passphrase parameters are out of range");
  }
  SecretBytes key(crypto::kKeySize);
  if (crypto_pwhash(key.RevealMutable().data(), key.size(), reinterpret_cast<const char*>(passphrase.Reveal().data()),
                    passphrase.size(), salt.data(), params.opslimit, static_cast<size_t>(params.memlimit),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status::NoSpace("Argon2id needs " + std::to_string(params.memlimit >> 20) + " MiB of memory");
  }
  return key;
}

}  // namespace

Result<PassphraseRootKey> DeriveRootKeyFromNewPassphrase(const SecretBytes& passphrase,
                                                         const PassphraseKdfParams& params) {
  if (sodium_init() < 0) {
    return Status::Internal("libsodium failed to initialise");
  }
  // A fresh salt: the new root key shares nothing with one derived from the same passphrase before.
  Bytes salt(crypto_pwhash_SALTBYTES);
  randombytes_buf(salt.data(), salt.size());
  PassphraseRootKey out;
  COFFRE_ASSIGN_OR_RETURN(out.root_key, Stretch(passphrase, params, salt));
  out.kdf_record = EncodeKdf(params, salt);
  return out;
}

Result<SecretBytes> LoadRootKeyCredential(const std::string& name) {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') {
    return Status::FailedPrecondition(
        "root_key_source is \"credential\" but $CREDENTIALS_DIRECTORY is not set; "
        "start coffre from systemd with LoadCredential=" +
        name + ":/path/to/key");
  }
  if (name.empty() || name.find('/') != std::string::npos) {
    return Status::InvalidArgument("root_key_credential must be a plain credential name");
  }
  return LoadRootKeyFile(std::string(dir) + "/" + name);
}

Result<SecretBytes> ReadPassphraseFromFd(int fd) {
  if (fd < 0) {
    return Status::InvalidArgument("--passphrase-fd must be an open file descriptor");
  }
  return ReadLine(fd, /*stop_at_newline=*/false);
}

Result<SecretBytes> PromptPassphrase(bool confirm) {
  if (::isatty(STDIN_FILENO) != 1) {
    return Status::FailedPrecondition(
        "the root key comes from a passphrase and stdin is not a terminal: pass it "
        "with --passphrase-fd N");
  }
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty < 0) {
    return Status::FromErrno(errno, "open /dev/tty");
  }
  struct termios saved {};
  if (::tcgetattr(tty, &saved) != 0) {
    const int err = errno;
    ::close(tty);
    return Status::FromErrno(err, "tcgetattr");
  }
  struct termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  (void)::tcsetattr(tty, TCSAFLUSH, &quiet);
  auto ask = [&](std::string_view prompt) -> Result<SecretBytes> {
    (void)!::write(tty, prompt.data(), prompt.size());
    auto r = ReadLine(tty, /*stop_at_newline=*/true);
    (void)!::write(tty, "\n", 1);
    return r;
  };
  auto first = ask("Coffre root key passphrase: ");
  Result<SecretBytes> out = std::move(first);
  if (out.ok() && confirm) {
    auto again = ask("Again: ");
    if (!again.ok()) {
      out = again.status();
    } else if (again->size() != out->size() ||
               sodium_memcmp(again->Reveal().data(), out->Reveal().data(), out->size()) != 0) {
      out = Status::InvalidArgument("the two passphrases differ");
    }
  }
  (void)::tcsetattr(tty, TCSAFLUSH, &saved);
  ::close(tty);
  return out;
}

Result<SecretBytes> DeriveRootKeyFromPassphrase(const std::string& keystore_path, const SecretBytes& passphrase,
                                                bool create, const PassphraseKdfParams& params) {
  if (sodium_init() < 0) {
    return Status::Internal("libsodium failed to initialise");
  }
  COFFRE_ASSIGN_OR_RETURN(
      std::unique_ptr<db::Connection> conn,
      db::Connection::Open(keystore_path, create ? db::OpenMode::kReadWriteCreate : db::OpenMode::kReadWrite));
  COFFRE_RETURN_IF_ERROR(internal::MigrateKeystoreSchema(*conn));
  PassphraseKdfParams used;
  Bytes salt;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
    bool found = false;
    bool has_check = false;
    {
      COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT name, value FROM meta"));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) {
          break;
        }
        if (st.ColumnTextView(0) == kKdfName) {
          COFFRE_RETURN_IF_ERROR(DecodeKdf(st.ColumnBlobView(1), &used, &salt));
          found = true;
        } else if (st.ColumnTextView(0) == "root-key-check") {
          has_check = true;
        }
      }
    }
    if (!found) {
      if (!create || has_check) {
        return Status::FailedPrecondition(
            "this keystore's root key does not come from a passphrase (no "
            "passphrase parameters in it); set root_key_source to its real source");
      }
      used = params;
      salt.resize(crypto_pwhash_SALTBYTES);
      randombytes_buf(salt.data(), salt.size());
      COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("INSERT INTO meta(name, value) VALUES(?, ?)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(kKdfName, EncodeKdf(used, salt)));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  return Stretch(passphrase, used, salt);
}

}  // namespace coffre::keystore
