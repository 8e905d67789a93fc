// What the key-usage audit log costs small-object PUT and GET (the target: at most 10 % of their
// throughput, docs/PERFORMANCE.md). Measured through service::ObjectService with everything real: the SQLite
// catalog, the local blob store with its fsyncs, the keystore, and (variant A) a real
// audit::AuditLog as the service's recorder, or (variant B) no recorder at all. 4 KiB objects, at
// concurrency 1 and 16 (threads calling the service directly: no HTTP, no SigV4, so the audit
// log's share is as large as it can be).
//
// Both variants share one service and its stores; only set_audit() changes between them, so the
// catalog's and the blob store's growth is the same for both. Each round runs every cell A then B,
// the next round B then A (the machine is shared and noisy: only the ratio measured in the same
// run means something). The summary quotes, per cell, the median ops/s of each variant and the
// median over rounds of B/A - 1, the "audit cost".
//
//   coffre_audit_bench [--rounds=N] [--seconds=S] [--ops=put,get] [--conc=1,16] [Google Benchmark flags]
//
// Data lives in a temporary directory under $TMPDIR (default /tmp), removed at exit: point TMPDIR
// at the data disk (a tmpfs makes every fsync free and the measure meaningless; a warning says so).

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "coffre/audit/audit_log.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/object_service.h"
#include "coffre/storage/blob_store.h"
#include "micro/temp_dir.h"

namespace coffre::bench {
namespace {

constexpr size_t kObjectSize = 4096;
constexpr int kGetObjects = 2000;       // pre-written objects that GETs pick from at random
constexpr int kPutKeysPerThread = 500;  // each PUT thread overwrites its own keys in turn

void Die(const std::string& what) {
  std::fprintf(stderr, "audit cost bench: %s\n", what.c_str());
  std::exit(2);
}

struct Env {
  std::string dir;
  std::unique_ptr<keystore::Keystore> keys;
  std::unique_ptr<catalog::Catalog> catalog;
  std::unique_ptr<storage::BlobStore> blobs;
  std::unique_ptr<service::ObjectService> service;
  std::unique_ptr<audit::AuditLog> log;
  catalog::Bucket put_bucket;
  catalog::Bucket get_bucket;
  Bytes body = Bytes(kObjectSize, 0);
};

Env* g_env = nullptr;

void MakeEnv() {
  auto* env = new Env;
  env->dir = BenchTempDir() + "/audit-cost";
  if (::mkdir(env->dir.c_str(), 0700) != 0) Die("cannot create " + env->dir);
  struct statfs fs {};
  if (::statfs(env->dir.c_str(), &fs) == 0 && fs.f_type == 0x01021994 /* TMPFS_MAGIC */) {
    std::fprintf(stderr, "WARNING: %s is on tmpfs: fsync costs nothing there; set TMPDIR to the data disk\n",
                 env->dir.c_str());
  }
  const SecretBytes root = SecretBytes::Random(32);
  auto keys = keystore::Keystore::Open(env->dir + "/keystore.db", root);
  if (!keys.ok()) Die("keystore: " + keys.status().ToString());
  env->keys = std::move(keys).value();
  auto cat = catalog::Catalog::Open(env->dir + "/catalog.db");
  if (!cat.ok()) Die("catalog: " + cat.status().ToString());
  env->catalog = std::move(cat).value();
  auto blobs = storage::OpenLocalBlobStore(env->dir);
  if (!blobs.ok()) Die("blob store: " + blobs.status().ToString());
  env->blobs = std::move(blobs).value();
  service::ServiceOptions opts;  // the daemon's defaults (64 KiB segments) ...
  opts.garbage_grace_ms = 0;     // ... but overwritten blobs are collected between runs
  env->service = std::make_unique<service::ObjectService>(*env->catalog, *env->keys, *env->blobs, opts);
  // The daemon's audit options (checkpoint every 1,000 records or 60 s): checkpoints are part of
  // what the log costs.
  auto log = audit::AuditLog::Open(env->dir + "/audit.db", root);
  if (!log.ok()) Die("audit log: " + log.status().ToString());
  env->log = std::move(log).value();
  auto tenant = env->keys->CreateTenant("bench");
  if (!tenant.ok()) Die("tenant: " + tenant.status().ToString());
  auto pb = env->service->CreateBucket(tenant->id, "put-bucket");
  auto gb = env->service->CreateBucket(tenant->id, "get-bucket");
  if (!pb.ok() || !gb.ok()) Die("buckets");
  env->put_bucket = *pb;
  env->get_bucket = *gb;
  std::mt19937_64 rng(42);
  for (auto& b : env->body) b = static_cast<uint8_t>(rng());
  // The GET objects, written without the audit log (their records are not what is measured).
  for (int i = 0; i < kGetObjects; ++i) {
    auto w = env->service->BeginPut(env->get_bucket, "dossiers/" + std::to_string(i) + "/doc.pdf", {}, {});
    if (!w.ok() || !(*w)->Write(env->body).ok() || !(*w)->Commit({}).ok()) Die("writing the GET objects");
  }
  g_env = env;
}

// Range(0): 1 = variant A (audit log), 0 = variant B (no recorder). Runs before the threads start.
void SetUpVariant(const benchmark::State& state) {
  g_env->service->set_audit(state.range(0) != 0 ? g_env->log.get() : nullptr);
}

void TearDownVariant(const benchmark::State&) {
  g_env->service->set_audit(nullptr);
  if (auto r = g_env->service->CollectGarbage(); !r.ok()) Die("garbage collection: " + r.error().message);
}

// CPU time of the whole process (every thread: the callers and the audit log's writer), seconds.
double ProcessCpuSeconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Thread 0 measures the process's CPU over the timed loop (the threads start and stop it
// together) and reports it per operation: what an operation costs in CPU, the audit writer's
// share included. Counters are summed over threads, so only thread 0 sets it.
void ReportCpu(benchmark::State& state, double cpu_before) {
  if (state.thread_index() != 0 || state.iterations() == 0) return;
  const double ops = static_cast<double>(state.iterations()) * state.threads();
  state.counters["cpu_us_per_op"] = (ProcessCpuSeconds() - cpu_before) * 1e6 / ops;
}

service::RequestInfo RequestFor(const benchmark::State& state, const char* action, uint64_t n) {
  // As large as a real request's fields (x-amz-request-id, access key id, client address).
  char id[17];
  std::snprintf(id, sizeof(id), "%04x%012llx", state.thread_index() & 0xffff, static_cast<unsigned long long>(n));
  return service::RequestInfo{id, "COABCDEFGHIJKLMNOPQR", "127.0.0.1:" + std::to_string(40000 + state.thread_index()),
                              action};
}

void BM_Put(benchmark::State& state) {
  Env& env = *g_env;
  const std::string prefix = "t" + std::to_string(state.thread_index()) + "/doc-";
  uint64_t n = 0;
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    const service::RequestInfo request = RequestFor(state, "PutObject", n);
    auto w = env.service->BeginPut(env.put_bucket, prefix + std::to_string(n % kPutKeysPerThread), {}, {}, &request);
    ++n;
    if (!w.ok()) {
      state.SkipWithError(("BeginPut: " + w.error().message).c_str());
      break;
    }
    if (auto r = (*w)->Write(env.body); !r.ok()) {
      state.SkipWithError(("Write: " + r.error().message).c_str());
      break;
    }
    if (auto r = (*w)->Commit({}); !r.ok()) {
      state.SkipWithError(("Commit: " + r.error().message).c_str());
      break;
    }
  }
  ReportCpu(state, cpu_before);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kObjectSize));
}

void BM_Get(benchmark::State& state) {
  Env& env = *g_env;
  std::mt19937 rng(static_cast<unsigned>(state.thread_index() * 7919 + 1));
  std::uniform_int_distribution<int> pick(0, kGetObjects - 1);
  Bytes out(kObjectSize);
  uint64_t n = 0;
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    const service::RequestInfo request = RequestFor(state, "GetObject", n++);
    auto r = env.service->OpenObject(env.get_bucket, "dossiers/" + std::to_string(pick(rng)) + "/doc.pdf", &request);
    if (!r.ok()) {
      state.SkipWithError(("OpenObject: " + r.error().message).c_str());
      break;
    }
    auto got = (*r)->Read(out);
    if (!got.ok() || *got != kObjectSize || (*r)->remaining() != 0) {
      state.SkipWithError("Read: short or failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  ReportCpu(state, cpu_before);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kObjectSize));
}

// Collects every run for the summary, and prints the usual console table.
class Collector : public benchmark::ConsoleReporter {
 public:
  Collector() : ConsoleReporter(::isatty(1) != 0 ? OO_Defaults : OO_Tabular) {}
  struct Cell {
    std::string op;
    int conc;
    bool audit;
    int round;
  };
  void Register(const std::string& name, Cell cell) { cells_[name] = cell; }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) {
        failed_ = true;
        continue;
      }
      const std::string full = run.benchmark_name();
      for (const auto& [prefix, cell] : cells_) {
        if (full.rfind(prefix + "/", 0) == 0) {
          // Google Benchmark's own rate: every thread's iterations over the (wall) run time.
          const auto it = run.counters.find("items_per_second");
          if (it != run.counters.end()) ops_[{cell.op, cell.conc, cell.audit}][cell.round] = it->second.value;
          const auto cpu = run.counters.find("cpu_us_per_op");
          if (cpu != run.counters.end()) cpu_[{cell.op, cell.conc, cell.audit}][cell.round] = cpu->second.value;
        }
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  bool failed() const { return failed_; }
  const std::map<std::tuple<std::string, int, bool>, std::map<int, double>>& ops() const { return ops_; }
  const std::map<std::tuple<std::string, int, bool>, std::map<int, double>>& cpu() const { return cpu_; }

 private:
  std::map<std::string, Cell> cells_;
  std::map<std::tuple<std::string, int, bool>, std::map<int, double>> ops_;
  std::map<std::tuple<std::string, int, bool>, std::map<int, double>> cpu_;
  bool failed_ = false;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " / " + b + " / " + c;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace
}  // namespace coffre::bench

int main(int argc, char** argv) {
  using namespace coffre::bench;
  benchmark::Initialize(&argc, argv);
  int rounds = 5;
  double seconds = 2.0;
  std::vector<std::string> ops = {"put", "get"};
  std::vector<int> concs = {1, 16};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--rounds=", 0) == 0) {
      rounds = std::max(1, std::atoi(a.c_str() + 9));
    } else if (a.rfind("--seconds=", 0) == 0) {
      seconds = std::max(0.01, std::atof(a.c_str() + 10));
    } else if (a.rfind("--ops=", 0) == 0) {
      ops = SplitList(a.substr(6));
    } else if (a.rfind("--conc=", 0) == 0) {
      concs.clear();
      for (const auto& c : SplitList(a.substr(7))) concs.push_back(std::max(1, std::atoi(c.c_str())));
    } else {
      std::fprintf(stderr,
                   "unknown argument %s\nusage: %s [--rounds=N] [--seconds=S] [--ops=put,get] [--conc=1,16] "
                   "[Google Benchmark flags]\n",
                   argv[i], argv[0]);
      return 2;
    }
  }

  for (const std::string& op : ops) {
    if (op != "put" && op != "get") {
      std::fprintf(stderr, "unknown operation '%s' in --ops (put, get)\n", op.c_str());
      return 2;
    }
  }

  MakeEnv();
  Collector collector;
  for (int r = 0; r < rounds; ++r) {
    for (const std::string& op : ops) {
      for (int conc : concs) {
        // A then B in even rounds, B then A in odd ones.
        const bool order[2] = {r % 2 == 0, r % 2 != 0};
        for (bool audit : order) {
          const std::string name = "AuditCost/" + op + "/conc:" + std::to_string(conc) +
                                   (audit ? "/audit:on" : "/audit:off") + "/round:" + std::to_string(r);
          collector.Register(name, {op, conc, audit, r});
          benchmark::RegisterBenchmark(name.c_str(), op == "put" ? BM_Put : BM_Get)
              ->Arg(audit ? 1 : 0)
              ->Threads(conc)
              ->UseRealTime()
              ->MinTime(seconds)
              ->Setup(SetUpVariant)
              ->Teardown(TearDownVariant);
        }
      }
    }
  }
  const std::string load_before = LoadAverage();
  benchmark::RunSpecifiedBenchmarks(&collector);
  const std::string load_after = LoadAverage();

  std::printf("\nAudit cost: 4 KiB objects through ObjectService, %d round(s) of %.1f s per cell, A/B alternated\n",
              rounds, seconds);
  std::printf("A = real audit::AuditLog as recorder, B = no recorder; cost = median over rounds of (B/A - 1)\n");
  std::printf("Load average before: %s, after: %s; nproc %d; data in %s\n\n", load_before.c_str(), load_after.c_str(),
              get_nprocs(), g_env->dir.c_str());
  std::printf(
      "| op | conc | A ops/s (audit) | B ops/s (no audit) | audit cost %% | rounds (min..max) "
      "| CPU µs/op A | CPU µs/op B |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const std::string& op : ops) {
    for (int conc : concs) {
      const auto a_it = collector.ops().find({op, conc, true});
      const auto b_it = collector.ops().find({op, conc, false});
      if (a_it == collector.ops().end() || b_it == collector.ops().end()) continue;
      std::vector<double> a, b, cost;
      for (const auto& [round, va] : a_it->second) {
        a.push_back(va);
        const auto vb = b_it->second.find(round);
        if (vb != b_it->second.end() && va > 0) cost.push_back((vb->second / va - 1.0) * 100.0);
      }
      for (const auto& [round, vb] : b_it->second) b.push_back(vb);
      const auto [lo, hi] = cost.empty() ? std::pair<double, double>{0, 0}
                                         : std::pair<double, double>{*std::min_element(cost.begin(), cost.end()),
                                                                     *std::max_element(cost.begin(), cost.end())};
      auto cpu_median = [&](bool audit) {
        std::vector<double> v;
        const auto it = collector.cpu().find({op, conc, audit});
        if (it != collector.cpu().end()) {
          for (const auto& [round, x] : it->second) v.push_back(x);
        }
        return Median(v);
      };
      std::printf("| %s | %d | %.0f | %.0f | **%.1f %%** | %.1f..%.1f | %.0f | %.0f |\n", op == "put" ? "PUT" : "GET",
                  conc, Median(a), Median(b), Median(cost), lo, hi, cpu_median(true), cpu_median(false));
    }
  }
  std::printf("\naudit records written: %llu\n", static_cast<unsigned long long>(g_env->log->records_written()));
  const bool failed = collector.failed();
  // The audit log signs its last checkpoint and stops; the stores close; the directory goes at exit.
  g_env->service.reset();
  g_env->log.reset();
  return failed ? 1 : 0;
}
