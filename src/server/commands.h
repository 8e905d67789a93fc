#pragma once

// The subcommands of `coffre`. Each family registers itself on the CLI11 app in its own file
// (cli_<family>.cc); when parsing selects a command, its registration stores what to run.

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "coffre/common/status.h"
#include "coffre/server/config.h"

namespace coffre::server {

// What the selected subcommand will do, once parsing has succeeded. Returns the exit status.
struct CommandRunner {
  std::function<int()> run;
};

// --config / --data-dir, shared by `serve` and every admin command.
struct CommonFlags {
  std::string config_file;
  std::string data_dir;
  int passphrase_fd = -1;  // root_key_source "passphrase": read it from this descriptor
};

void AddCommonFlags(CLI::App* cmd, CommonFlags& flags);
// The embedded development config, or --config's file, with --data-dir applied.
Result<Config> ResolveConfig(const CommonFlags& flags);
// Prints "coffre: <message>" on stderr; exit status 1 for bad input, 2 otherwise.
int Fail(const Status& status);
// What a command that did part of its work exits with, the rest named in its report: catalog
// rebuild (some blobs could not be rebuilt from; the catalog is installed all the same), storage
// migrate (some blobs were not copied; the next run tries them again).
constexpr int kExitIncomplete = 3;
// "<title>: <count><suffix>" then each item indented, on stdout; nothing for an empty list.
void PrintList(const char* title, const std::vector<std::string>& items, const char* suffix = "");

void RegisterServeCommand(CLI::App& app, CommandRunner& runner);
void RegisterTenantCommands(CLI::App& app, CommandRunner& runner);
void RegisterKeystoreCommands(CLI::App& app, CommandRunner& runner);
// `coffre keystore backup|restore`, added to the `keystore` subcommand (cli_keystore_backup.cc).
void RegisterKeystoreBackupCommands(CLI::App* keystore, CommandRunner& runner);
void RegisterAccessKeyCommands(CLI::App& app, CommandRunner& runner);
void RegisterKeyCommands(CLI::App& app, CommandRunner& runner);
void RegisterAuditCommands(CLI::App& app, CommandRunner& runner);
void RegisterFsckCommands(CLI::App& app, CommandRunner& runner);
void RegisterCatalogCommands(CLI::App& app, CommandRunner& runner);
void RegisterStorageCommands(CLI::App& app, CommandRunner& runner);
void RegisterScrubCommands(CLI::App& app, CommandRunner& runner);
void RegisterConfigCommands(CLI::App& app, CommandRunner& runner);
void RegisterAdminCredentialCommands(CLI::App& app, CommandRunner& runner);
void RegisterApprovalCommands(CLI::App& app, CommandRunner& runner);

}  // namespace coffre::server
