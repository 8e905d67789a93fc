// coffre scrub [--tenant NAME] [--json]
//
// Reads every object of every tenant (or of one) through the same path a GET takes: data key
// unwrapped, every blob header and segment authenticated. Reports the objects whose data is
// missing or fails authentication (bit rot, truncation, blobs swapped on disk) by tenant, bucket
// and key; never repairs and never returns plaintext. It runs beside a live daemon (read-only);
// objects overwritten or deleted during the walk are skipped. The walk is service::Scrubber
// (coffre/service/scrub.h), which the daemon's background scrub runs too.
//
// Exit status: 0 every object verified, 3 damaged objects found, 1/2 as every command.

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_context.h"
#include "coffre/service/object_service.h"
#include "coffre/service/scrub.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

constexpr int kExitDamaged = 3;

Result<service::ScrubReport> Scrub(Stores& stores, const std::string& only_tenant) {
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  // No audit recorder: this command does not open the daemon's audit log; the background scrub
  // in the daemon records what it finds.
  service::Scrubber scrubber(service, *stores.catalog, *stores.keystore, *stores.blobs, /*audit=*/nullptr);
  service::ScrubOptions options;
  options.only_tenant = only_tenant;
  return scrubber.Run(options);
}

}  // namespace

void RegisterScrubCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string tenant;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  auto* scrub = app.add_subcommand("scrub", "Verify the authentication tags of every stored object");
  AddCommonFlags(scrub, flags->common);
  scrub->add_option("--tenant", flags->tenant, "Only this tenant's objects");
  scrub->add_flag("--json", flags->json, "Print the report as JSON");
  scrub->callback([flags, &runner] {
    runner.run = [flags] {
      auto context = OpenForCli(flags->common, CliStores::kBlobs);
      if (!context.ok()) {
        return Fail(context.status());
      }
      auto report = Scrub(context->stores, flags->tenant);
      if (!report.ok()) {
        return Fail(report.status());
      }
      const service::ScrubReport& r = *report;
      if (flags->json) {
        nlohmann::json damaged = nlohmann::json::array();
        for (const auto& d : r.damaged) {
          damaged.push_back(
              {{"tenant", d.tenant_name}, {"bucket", d.bucket}, {"key", d.key}, {"error", d.error.message}});
        }
        std::cout << nlohmann::json{{"objects_verified", r.objects},
                                    {"bytes_verified", r.bytes},
                                    {"skipped", r.skipped},
                                    {"erased", r.erased},
                                    {"damaged", damaged}}
                         .dump()
                  << std::endl;
      } else {
        for (const auto& d : r.damaged) {
          std::cout << "DAMAGED " << d.tenant_name << " " << d.bucket << "/" << d.key << ": " << d.error.message
                    << "\n";
        }
        std::cout << "scrub: " << r.objects << " objects (" << r.bytes << " bytes) verified, " << r.damaged.size()
                  << " damaged, " << r.skipped << " changed during the scrub"
                  << (r.erased == 0 ? "" : ", " + std::to_string(r.erased) + " under destroyed named keys")
                  << std::endl;
      }
      return r.damaged.empty() ? 0 : kExitDamaged;
    };
  });
}

}  // namespace coffre::server
