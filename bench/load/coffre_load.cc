// coffre_load: a closed-loop load generator for one operation against the Coffre daemon (S3,
// SigV4-signed with UNSIGNED-PAYLOAD) or against nginx (plain HTTP GET/HEAD, WebDAV PUT/DELETE),
// for the ceilings of bench/run_bench.py. Each of --concurrency threads holds one keep-alive
// connection and issues requests back to back. Prints one JSON object: ops, seconds, ops/s, MB/s,
// p50/p99 latency (ms), errors.
//
// Keys: PUT writes <prefix>put-<n> for n = 0, 1, ... (one shared counter) until --duration has
// passed (each thread completes at least one request) or --count requests were made; DELETE
// deletes <prefix>put-0 .. put-<count-1>; GET and HEAD read <prefix>obj-<n % count>, or with
// --keys FILE the file's keys (one per line) in turn; POPULATE PUTs <prefix>obj-0 .. obj-<count-1>;
// LIST sends ListObjectsV2 (max-keys 1000) on the bucket, from its start or after --start-after.
//
//   coffre_load --endpoint 127.0.0.1:9000 --target s3 --credentials DIR/dev-credentials.json
//               --bucket bench --op put --size 4096 --concurrency 16 --duration 2

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/sigv4/sigv4.h"
#include "http_client.h"
#include "sigv4_signer.h"

namespace coffre::load {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  bool s3 = true;  // false: nginx (plain HTTP + WebDAV)
  std::string access_key_id;
  std::string secret_access_key;
  std::string region = "us-east-1";
  std::string bucket = "bench";  // s3: bucket; nginx: a path component under the root
  std::string prefix;
  std::string op;
  uint64_t size = 4096;
  int concurrency = 1;
  double duration = 1.0;
  uint64_t count = 0;             // 0: no cap (PUT), required for GET/HEAD/DELETE/POPULATE
  std::vector<std::string> keys;  // --keys: GET/HEAD read these instead of <prefix>obj-<n>
  std::string start_after;        // LIST
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "coffre_load: %s\n"
               "usage: coffre_load --endpoint HOST:PORT --target s3|nginx [--credentials FILE]\n"
               "         [--bucket B] [--prefix P] --op put|get|head|delete|list|populate|mkbucket\n"
               "         [--size BYTES] [--concurrency N] [--duration SECONDS] [--count N]\n"
               "         [--keys FILE] [--start-after KEY]\n",
               why.c_str());
  std::exit(2);
}

// The two fields of dev-credentials.json the tool needs (flat JSON, string values).
std::string JsonString(const std::string& text, const std::string& field) {
  const size_t at = text.find("\"" + field + "\"");
  if (at == std::string::npos) return {};
  const size_t open = text.find('"', text.find(':', at) + 1);
  const size_t close = text.find('"', open + 1);
  if (open == std::string::npos || close == std::string::npos) return {};
  return text.substr(open + 1, close - open - 1);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--endpoint") {
      const std::string ep = value();
      const size_t colon = ep.rfind(':');
      if (colon == std::string::npos) Usage("--endpoint is HOST:PORT");
      o.host = ep.substr(0, colon);
      o.port = static_cast<uint16_t>(std::atoi(ep.c_str() + colon + 1));
    } else if (arg == "--target") {
      const std::string t = value();
      if (t != "s3" && t != "nginx") Usage("--target is s3 or nginx");
      o.s3 = t == "s3";
    } else if (arg == "--credentials") {
      std::ifstream in(value());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      o.access_key_id = JsonString(text, "access_key_id");
      o.secret_access_key = JsonString(text, "secret_access_key");
    } else if (arg == "--region") {
      o.region = value();
    } else if (arg == "--bucket") {
      o.bucket = value();
    } else if (arg == "--prefix") {
      o.prefix = value();
    } else if (arg == "--op") {
      o.op = value();
    } else if (arg == "--size") {
      o.size = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--concurrency") {
      o.concurrency = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--duration") {
      o.duration = std::atof(value().c_str());
    } else if (arg == "--count") {
      o.count = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--keys") {
      std::ifstream in(value());
      for (std::string line; std::getline(in, line);) {
        if (!line.empty()) o.keys.push_back(line);
      }
      if (o.keys.empty()) Usage("--keys names no readable, non-empty file");
    } else if (arg == "--start-after") {
      o.start_after = value();
    } else {
      Usage("unknown argument " + std::string(arg));
    }
  }
  if (o.port == 0) Usage("--endpoint is required");
  if (o.op.empty()) Usage("--op is required");
  if (o.s3 && (o.access_key_id.empty() || o.secret_access_key.empty())) Usage("--credentials is required for s3");
  if (!o.keys.empty()) o.count = o.keys.size();
  if ((o.op == "get" || o.op == "head" || o.op == "delete" || o.op == "populate") && o.count == 0) {
    Usage("--op " + o.op + " needs --count");
  }
  return o;
}

struct WorkerResult {
  std::vector<double> latencies_ms;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  std::string first_error;
};

int Run(const Options& o) {
  Bytes body;
  if (o.op == "put" || o.op == "populate") {
    body.resize(o.size);
    // Incompressible, and cheap to make: a PRNG, not a CSPRNG.
    std::mt19937_64 rng(42);
    for (size_t i = 0; i + 8 <= body.size(); i += 8) {
      const uint64_t v = rng();
      std::copy_n(reinterpret_cast<const uint8_t*>(&v), 8, body.data() + i);
    }
  }
  const std::optional<Signer> signer =
      o.s3 ? std::optional<Signer>(std::in_place, o.access_key_id, o.secret_access_key, o.region) : std::nullopt;
  const std::string base = "/" + o.bucket;  // s3: path-style bucket; nginx: directory
  std::atomic<uint64_t> next{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  const bool counted = o.op == "delete" || o.op == "populate" || o.op == "mkbucket";
  const uint64_t cap = o.op == "mkbucket" ? 1 : o.count;
  std::vector<WorkerResult> results(static_cast<size_t>(o.concurrency));
  std::vector<std::thread> threads;
  for (int w = 0; w < o.concurrency; ++w) {
    threads.emplace_back([&, w] {
      WorkerResult& r = results[static_cast<size_t>(w)];
      HttpClient client(o.host, o.port);
      const std::string host = client.HostHeader();
      for (uint64_t done = 0;; ++done) {
        if (!counted && done > 0 && Clock::now() >= deadline) break;
        std::string method;
        std::string target;
        std::span<const uint8_t> payload;
        bool keep_body = false;
        if (o.op == "get" || o.op == "head") {
          method = o.op == "get" ? "GET" : "HEAD";
          const uint64_t n = next.fetch_add(1) % o.count;
          target = base + "/" +
                   (o.keys.empty() ? o.prefix + "obj-" + std::to_string(n) : sigv4::UriEncode(o.keys[n], false));
        } else if (o.op == "list") {
          method = "GET";
          target = base + "?list-type=2&max-keys=1000";
          if (!o.start_after.empty()) target += "&start-after=" + sigv4::UriEncode(o.start_after, true);
          keep_body = true;
        } else if (o.op == "mkbucket") {
          method = "PUT";
          target = base;
        } else {
          const uint64_t n = next.fetch_add(1);
          if ((counted || o.count > 0) && n >= cap) break;
          method = o.op == "delete" ? "DELETE" : "PUT";
          target = base + "/" + o.prefix + (o.op == "populate" ? "obj-" : "put-") + std::to_string(n);
          if (method == "PUT") payload = body;
        }
        if (o.op == "mkbucket" && next.fetch_add(1) > 0) break;
        const auto headers = signer.has_value() ? signer->Sign(method, target, host)
                                                : std::vector<std::pair<std::string, std::string>>{};
        Response resp;
        const auto t0 = Clock::now();
        const bool ok = client.Do(method, target, headers, payload, keep_body, &resp);
        const auto t1 = Clock::now();
        const bool good = ok && resp.status >= 200 && resp.status < 300;
        if (!good) {
          ++r.errors;
          if (r.first_error.empty()) {
            r.first_error =
                method + " " + target + ": " +
                (ok ? "HTTP " + std::to_string(resp.status) + " " + resp.body.substr(0, 200) : client.error());
          }
          if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          if (r.errors > 100 && r.errors > done / 2) break;  // the server is down: stop
          continue;
        }
        r.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        r.bytes += method == "PUT" ? payload.size() : resp.body_bytes;
        if (o.op == "list" && resp.body.find("<Key>") == std::string::npos && o.s3) {
          ++r.errors;
          if (r.first_error.empty()) r.first_error = "ListObjectsV2 answer holds no key";
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> lat;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  std::string first_error;
  for (const auto& r : results) {
    lat.insert(lat.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    bytes += r.bytes;
    errors += r.errors;
    if (first_error.empty()) first_error = r.first_error;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    if (lat.empty()) return 0.0;
    return lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))];
  };
  std::string escaped;
  for (char c : first_error) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += (c == '\n' || c == '\r') ? ' ' : c;
  }
  std::printf(
      "{\"op\": \"%s\", \"target\": \"%s\", \"size\": %llu, \"concurrency\": %d, \"ops\": %zu, "
      "\"seconds\": %.4f, \"ops_per_s\": %.2f, \"mb_per_s\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"errors\": %llu, \"first_error\": \"%s\"}\n",
      o.op.c_str(), o.s3 ? "s3" : "nginx", static_cast<unsigned long long>(o.size), o.concurrency, lat.size(), seconds,
      static_cast<double>(lat.size()) / seconds, static_cast<double>(bytes) / seconds / 1e6, pct(0.5), pct(0.99),
      static_cast<unsigned long long>(errors), escaped.c_str());
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace coffre::load

int main(int argc, char** argv) { return coffre::load::Run(coffre::load::Parse(argc, argv)); }
