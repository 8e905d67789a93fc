// coffre config check FILE [--connect]

#include <algorithm>
#include <iostream>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

void Report(std::string_view step, const Status& st) {
  std::cout << "  " << step << ": " << (st.ok() ? "ok" : "FAILED: " + st.message()) << std::endl;
}

// Reaches the configured storage and does there what the daemon will do (write, read, list,
// delete a probe object), saying what works. 0 when everything does.
int CheckStorageConnection(const StorageConfig& storage) {
  if (storage.backend != "s3") {
    std::cout << "storage: local (the data directory); nothing to connect to" << std::endl;
    return 0;
  }
  std::cout << "storage: upstream bucket \"" << storage.bucket << "\" at " << storage.endpoint << std::endl;
  auto client = ConnectUpstream(storage);
  Report("secret file, connection, bucket (HEAD)", StatusOf(client));
  if (!client.ok()) return 1;
  upstream::S3Client& s3 = **client;
  // Under the prefix, named so that nobody takes it for a blob (fsck reports one left behind as a
  // stray).
  const std::string probe = storage.prefix + "coffre-connect-check-" + HexEncode(SecretBytes::Random(8).Reveal());
  const SecretBytes payload = SecretBytes::Random(1024);
  const ByteView sent = payload.Reveal();
  int failed = 0;
  auto step = [&failed](std::string_view name, const Status& st) {
    Report(name, st);
    if (!st.ok()) ++failed;
    return st.ok();
  };
  if (!step("write an object", StatusOf(s3.PutObject(probe, sent)))) return 1;
  Bytes got;
  Status read = StatusOf(s3.GetObject(probe, [&got](ByteView piece) {
    got.insert(got.end(), piece.begin(), piece.end());
    return Status::Ok();
  }));
  if (read.ok() && !std::equal(got.begin(), got.end(), sent.begin(), sent.end())) {
    read = Status::Corruption("the object read back differs from what was written");
  }
  step("read it back", read);
  upstream::ListRequest list;
  list.prefix = probe;
  auto listed = s3.ListObjectsV2(list);
  Status found = StatusOf(listed);
  if (listed.ok() && (listed->objects.size() != 1 || listed->objects[0].key != probe)) {
    found = Status::NotFound("the listing does not show the object");
  }
  step("list it", found);
  step("delete it", s3.DeleteObject(probe));
  return failed == 0 ? 0 : 1;
}

}  // namespace

void RegisterConfigCommands(CLI::App& app, CommandRunner& runner) {
  auto* config = app.add_subcommand("config", "Configuration file tools");
  config->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* check =
      config->add_subcommand("check",
                             "Validate a configuration file as `serve` would (fields, types, ranges, addresses); "
                             "exit 0 when valid, 1 with a message naming the bad field otherwise");
  check->add_option("FILE", *file, "JSON configuration file")->required();
  auto connect = std::make_shared<bool>(false);
  check->add_flag("--connect", *connect,
                  "Also reach the storage: for an upstream bucket, read the secret file, ask the bucket HEAD, then "
                  "write, read, list and delete a probe object, saying what works");
  check->callback([file, connect, &runner] {
    runner.run = [file, connect] {
      auto loaded = LoadConfigFile(*file);
      if (!loaded.ok()) {
        return Fail(loaded.status());
      }
      if (Status placed = CheckRootKeyPlacement(*loaded); !placed.ok()) {
        return Fail(Status::InvalidArgument(*file + ": " + placed.message()));
      }
      std::cout << *file << ": valid" << std::endl;
      return *connect ? CheckStorageConnection(loaded->storage) : 0;
    };
  });
}

}  // namespace coffre::server
