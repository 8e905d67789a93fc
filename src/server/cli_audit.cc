// coffre audit export | verify | public-key | check  (docs/AUDIT.md)

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>
#include <sstream>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/audit/archive.h"
#include "coffre/audit/bundle.h"
#include "coffre/audit/export_arguments.h"
#include "coffre/common/clock.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

// Exit status of `coffre audit verify` when the bundle was tampered with (0: verified; 1: bad
// input, not a bundle, another key; 2: other errors).
constexpr int kTampered = 3;

// Writes `data` to `path` whole or not at all: a temporary file beside it, fsync, rename, fsync of
// the directory. Refuses to replace an existing file (an export is evidence).
Status WriteFileAtomically(const std::string& path, const std::string& data) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return Status::AlreadyExists(path + " already exists; choose another --out");
  }
  const std::string tmp = path + ".tmp-" + RandomId(4);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    return Status::FromErrno(errno, "cannot write " + path);
  }
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::FromErrno(err, "cannot write " + path);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, "cannot write " + path);
  }
  ::close(fd);
  if (::link(tmp.c_str(), path.c_str()) != 0) {  // link, unlike rename, never replaces
    const int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, "cannot write " + path);
  }
  ::unlink(tmp.c_str());
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read " + path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --public-key takes the key itself or a file holding it.
Result<Bytes> LoadPublicKey(const std::string& arg) {
  if (arg.rfind("coffre-audit-ed25519:", 0) == 0) {
    return audit::DecodePublicKey(arg);
  }
  auto text = ReadWholeFile(arg);
  if (!text.ok()) {
    return Status::InvalidArgument("--public-key: neither a key (coffre-audit-ed25519:...) nor a readable file: " +
                                   arg);
  }
  auto key = audit::DecodePublicKey(*text);
  if (!key.ok()) {
    return Status::InvalidArgument("--public-key " + arg + ": " + key.status().message());
  }
  return key;
}

Status CheckAuditLogExists(const Config& config) {
  struct stat st {};
  if (::stat((config.data_dir + "/audit.db").c_str(), &st) != 0) {
    return Status::NotFound("no audit log in " + config.data_dir + " (start the daemon once, or check --data-dir)");
  }
  return Status::Ok();
}

// Loads the root key once, checks it against the keystore (so a wrong key is named clearly),
// then opens the log with it.
Result<std::unique_ptr<audit::AuditLog>> OpenExistingAuditLog(const CommonFlags& flags) {
  COFFRE_ASSIGN_OR_RETURN(Config config, ResolveConfig(flags));
  COFFRE_RETURN_IF_ERROR(CheckAuditLogExists(config));
  COFFRE_ASSIGN_OR_RETURN(CliContext context, OpenForCli(std::move(config)));
  COFFRE_RETURN_IF_ERROR(context.OpenAuditLogToRead());
  return std::move(context.audit_log);
}

int RunExport(const CommonFlags& common, const std::string& tenant_name, const std::string& from, const std::string& to,
              const std::string& format, const std::string& out) {
  static constexpr audit::ExportArgumentNames kNames{"--format", "--from", "--to", /*quote_rejected_time=*/true};
  auto fmt = audit::ParseBundleFormat(format, kNames);
  if (!fmt.ok()) return Fail(fmt.status());
  auto range = audit::ParseExportTimeRange(from, to, ToUnixMillis(Clock::System().Now()), kNames);
  if (!range.ok()) return Fail(range.status());
  const UnixMillis from_ms = range->from_ms;
  const UnixMillis to_ms = range->to_ms;
  auto context = OpenForCli(common);
  if (!context.ok()) return Fail(context.status());
  auto tenant = context->keys().GetTenantByName(tenant_name);
  if (!tenant.ok()) {
    if (tenant.status().code() == StatusCode::kNotFound) {
      return Fail(Status::InvalidArgument("unknown tenant '" + tenant_name + "'"));
    }
    return Fail(tenant.status());
  }
  if (Status st = CheckAuditLogExists(context->config); !st.ok()) return Fail(st);
  if (Status st = context->OpenAuditLogToRead(); !st.ok()) return Fail(st);
  audit::AuditLog* log = context->audit_log.get();
  // Sign the newest records first, so that the export carries no unsigned tail.
  if (Status st = log->Checkpoint(); !st.ok()) {
    return Fail(Status(st.code(), "cannot sign a checkpoint before exporting: " + st.message()));
  }
  auto data = log->ExportTenant(tenant->id, from_ms, to_ms);
  if (!data.ok()) return Fail(data.status());
  audit::BundleInfo info;
  info.tenant = tenant->id;
  info.tenant_name = tenant->name;
  info.from_ms = from_ms;
  info.to_ms = to_ms;
  info.generated_ms = ToUnixMillis(Clock::System().Now());
  const std::string bundle = audit::EncodeBundle(*data, info, *fmt);
  const std::string base = out.substr(out.rfind('/') == std::string::npos ? 0 : out.rfind('/') + 1);
  const std::string readme_path = out + ".README.txt";
  if (Status st = WriteFileAtomically(out, bundle); !st.ok()) return Fail(st);
  if (Status st = WriteFileAtomically(readme_path, audit::BundleReadme(info, base, data->public_key)); !st.ok()) {
    ::unlink(out.c_str());  // nothing half-written: the bundle goes with its README
    return Fail(st);
  }
  if (data->records.empty()) {
    std::cerr << "note: tenant " << tenant->name << " has no record in the live audit log (archived?); the bundle "
              << "holds none and will not verify" << std::endl;
  }
  std::cout << "exported " << data->records.size() << " record(s) and " << data->checkpoints.size()
            << " checkpoint(s) of tenant " << tenant->name << " to " << out << " (README: " << readme_path << ")\n"
            << "public key: " << audit::EncodePublicKey(data->public_key) << std::endl;
  return 0;
}

int PrintArchiveReport(const audit::Archive& archive, const audit::VerifyReport& report) {
  if (report.ok()) {
    std::cout << "OK: archive of " << report.records << " record(s) (global " << archive.start_global.seq + 1 << ".."
              << archive.end_gseq << ") verified";
    if (report.records > 0) {
      std::cout << ", from " << FormatIso8601(FromUnixMillis(report.first_ms)) << " to "
                << FormatIso8601(FromUnixMillis(report.last_ms));
    }
    std::cout << std::endl;
    return 0;
  }
  std::cout << "FAILED (" << audit::BreakageName(report.breakage) << "): " << report.message << std::endl;
  return kTampered;
}

int RunVerify(const std::string& file, const std::string& public_key) {
  auto key = LoadPublicKey(public_key);
  if (!key.ok()) return Fail(key.status());
  auto text = ReadWholeFile(file);
  if (!text.ok()) return Fail(text.status());
  if (audit::LooksLikeArchive(*text)) {
    auto archive = audit::ParseArchive(*text);
    if (!archive.ok()) return Fail(Status::InvalidArgument(file + ": " + archive.status().message()));
    auto report = audit::VerifyArchive(*archive, *key);
    if (!report.ok()) return Fail(Status::InvalidArgument(file + ": " + report.status().message()));
    return PrintArchiveReport(*archive, *report);
  }
  auto bundle = audit::ParseBundle(*text);
  if (!bundle.ok()) return Fail(Status::InvalidArgument(file + ": " + bundle.status().message()));
  auto report = audit::VerifyBundle(*bundle, *key);
  if (!report.ok()) return Fail(Status::InvalidArgument(file + ": " + report.status().message()));
  if (report->ok()) {
    std::cout << "OK: " << report->records << " record(s) of tenant " << bundle->info.tenant_name << " ("
              << bundle->info.tenant << ") verified";
    if (report->records > 0) {
      std::cout << ", from " << FormatIso8601(FromUnixMillis(report->first_ms)) << " to "
                << FormatIso8601(FromUnixMillis(report->last_ms));
    }
    std::cout << std::endl;
    return 0;
  }
  std::cout << "FAILED (" << audit::BreakageName(report->breakage) << "): " << report->message << "\n"
            << report->records << " record(s) verified before the break" << std::endl;
  return kTampered;
}

// Writes the archive, reads it back and verifies it, and only then prunes what it holds.
int RunArchive(const CommonFlags& common, const std::string& before, const std::string& out) {
  auto before_ms = audit::ParseTimeArgument("--before", before, /*quote_rejected_time=*/true);
  if (!before_ms.ok()) return Fail(before_ms.status());
  auto log = OpenExistingAuditLog(common);
  if (!log.ok()) return Fail(log.status());
  auto archive = (*log)->PrepareArchive(*before_ms);
  if (!archive.ok()) return Fail(archive.status());
  if (archive->records.empty()) {
    std::cout << "nothing to archive: no signed record older than " << before << std::endl;
    return 0;
  }
  if (Status st = WriteFileAtomically(out, audit::EncodeArchive(*archive)); !st.ok()) return Fail(st);
  auto text = ReadWholeFile(out);
  if (!text.ok()) return Fail(text.status());
  auto reread = audit::ParseArchive(*text);
  if (!reread.ok())
    return Fail(Status::Internal("the archive written to " + out +
                                 " does not parse back: " + reread.status().message() + "; nothing pruned"));
  auto report = audit::VerifyArchive(*reread, (*log)->public_key());
  if (!report.ok() || !report->ok() || report->records != archive->records.size()) {
    return Fail(Status::Corruption("the archive written to " + out + " does not verify; nothing pruned"));
  }
  if (Status st = (*log)->Prune(*reread); !st.ok()) {
    return Fail(Status(st.code(), "archive " + out + " written, but pruning failed: " + st.message()));
  }
  std::cout << "archived " << archive->records.size() << " record(s) (global " << archive->start_global.seq + 1 << ".."
            << archive->end_gseq << ") to " << out << " and pruned them from the live log" << std::endl;
  return 0;
}

}  // namespace

void RegisterAuditCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string tenant;
    std::string from;
    std::string to;
    std::string format = "jsonl";
    std::string out;
    std::string file;
    std::string public_key;
  };
  auto flags = std::make_shared<Flags>();
  auto* audit = app.add_subcommand("audit", "The auditors' key-usage log");
  audit->require_subcommand(1);

  auto* exp = audit->add_subcommand("export", "Write a tenant's signed records to an auditor's bundle");
  AddCommonFlags(exp, flags->common);
  exp->add_option("--tenant", flags->tenant, "Tenant name")->required();
  exp->add_option("--from", flags->from, "Start, UTC (2026-11-28 or 2026-11-28T10:15:00Z); default: the beginning");
  exp->add_option("--to", flags->to, "End, UTC, inclusive; default: now");
  exp->add_option("--format", flags->format, "jsonl (default) or csv");
  exp->add_option("--out", flags->out, "Bundle file to create (must not exist); README beside it")->required();
  exp->callback([flags, &runner] {
    runner.run = [flags] {
      return RunExport(flags->common, flags->tenant, flags->from, flags->to, flags->format, flags->out);
    };
  });

  auto* verify = audit->add_subcommand(
      "verify", "Check a bundle offline; exit 0 verified, 3 tampered (names the first broken record), 1 bad input");
  verify->add_option("FILE", flags->file, "Bundle written by `coffre audit export`")->required();
  verify->add_option("--public-key", flags->public_key, "The gateway's audit key, or a file holding it")->required();
  verify->callback([flags, &runner] { runner.run = [flags] { return RunVerify(flags->file, flags->public_key); }; });

  auto* archive = audit->add_subcommand(
      "archive", "Move every signed record older than --before to a verified archive, then prune them");
  AddCommonFlags(archive, flags->common);
  archive->add_option("--before", flags->to, "UTC time (2026-01-01 or 2026-01-01T00:00:00Z)")->required();
  archive->add_option("--out", flags->out, "Archive file to create (must not exist)")->required();
  archive->callback(
      [flags, &runner] { runner.run = [flags] { return RunArchive(flags->common, flags->to, flags->out); }; });

  auto* pub = audit->add_subcommand("public-key", "Print the audit log's signing public key");
  AddCommonFlags(pub, flags->common);
  pub->callback([flags, &runner] {
    runner.run = [flags] {
      auto log = OpenExistingAuditLog(flags->common);
      if (!log.ok()) return Fail(log.status());
      std::cout << audit::EncodePublicKey((*log)->public_key()) << std::endl;
      return 0;
    };
  });

  auto* check = audit->add_subcommand("check", "Verify every chain and signature of the stored log (all tenants)");
  AddCommonFlags(check, flags->common);
  check->callback([flags, &runner] {
    runner.run = [flags] {
      auto log = OpenExistingAuditLog(flags->common);
      if (!log.ok()) return Fail(log.status());
      auto n = (*log)->VerifyStored();
      if (!n.ok()) {
        if (n.status().code() == StatusCode::kCorruption) {
          std::cout << "FAILED: " << n.status().message() << std::endl;
          return kTampered;
        }
        return Fail(n.status());
      }
      std::cout << "OK: " << *n << " record(s) verified (every tenant chain, the global chain, every checkpoint)"
                << std::endl;
      return 0;
    };
  });
}

}  // namespace coffre::server
