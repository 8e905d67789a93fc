// Catalog insert, lookup and one 1,000-key ListObjects page in a bucket of 1 M keys, beside the
// same operations in a bucket of 10 k keys (the target: a list page costs the same at 10 M keys
// as at 10 k, docs/PERFORMANCE.md; the ratio big/small is what to read).
//
// Generating the big bucket: one PutObject per row costs one durable transaction (an fsync,
// about 1 ms here), so 1 M rows through the API alone would take some twenty minutes. Instead the
// catalog API writes one template object per bucket (so every column holds what the catalog
// itself writes), then one SQL transaction with synchronous=OFF copies that template to N keys,
// column by column as PRAGMA table_info lists them (so a migration that adds a column does not
// break the generator). Keys look like the bank's: dossiers/DDDDDD/doc-NN.pdf, 16 per dossier.
// COFFRE_BENCH_CATALOG_ROWS overrides the 1 M (e.g. 10000000 for the bank's 10 M-key bucket).

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"
#include "temp_dir.h"

namespace coffre::bench {
namespace {

constexpr int64_t kSmallRows = 10'000;
constexpr int64_t kDefaultBigRows = 1'000'000;
constexpr char kTemplateKey[] = "~template";

int64_t BigRows() {
  const char* env = std::getenv("COFFRE_BENCH_CATALOG_ROWS");
  if (env != nullptr) {
    if (auto n = ParseDecimal(env); n.has_value() && *n >= kSmallRows) return static_cast<int64_t>(*n);
  }
  return kDefaultBigRows;
}

std::string KeyFor(int64_t i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "dossiers/%07lld/doc-%02lld.pdf", static_cast<long long>(i / 16),
                static_cast<long long>(i % 16));
  return buf;
}

catalog::ObjectRecord TemplateObject(int64_t bucket_id, std::string key) {
  catalog::ObjectRecord rec;
  rec.bucket_id = bucket_id;
  rec.key = std::move(key);
  rec.object_id = RandomId();
  rec.size = 250'000;
  rec.etag = "9e107d9d372bb6826bd81d3542a419d6";
  rec.last_modified = 1'795'000'000'000;
  rec.attributes = {{"content-type", "application/pdf"}, {"x-amz-meta-dossier", "D0123456"}};
  rec.key_info.tenant_key_id = Bytes(16, 0x11);
  rec.key_info.tenant_key_version = 1;
  rec.key_info.wrapped_data_key = Bytes(60, 0x22);
  catalog::ObjectPart part;
  part.part_number = 0;
  part.blob_id = RandomId();
  part.size = rec.size;
  part.etag = rec.etag;
  rec.parts.push_back(std::move(part));
  return rec;
}

void Check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "catalog generator: %s: %s\n", what, sqlite3_errmsg(db));
    std::abort();
  }
}

std::vector<std::string> Columns(sqlite3* db, const std::string& table) {
  std::vector<std::string> cols;
  sqlite3_stmt* st = nullptr;
  Check(sqlite3_prepare_v2(db, ("PRAGMA table_info(" + table + ")").c_str(), -1, &st, nullptr), db, "table_info");
  while (sqlite3_step(st) == SQLITE_ROW) {
    cols.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
  }
  sqlite3_finalize(st);
  return cols;
}

// Copies the template row of `bucket_id` in `table` to keys 0..rows-1; `generated` maps a column
// to the SQL expression (over i) that replaces the template's value.
void CopyTemplate(sqlite3* db, const std::string& table, int64_t bucket_id, int64_t rows,
                  const std::vector<std::pair<std::string, std::string>>& generated) {
  std::string cols;
  std::string exprs;
  for (const std::string& c : Columns(db, table)) {
    std::string expr = "t." + c;
    for (const auto& [name, e] : generated) {
      if (name == c) expr = e;
    }
    cols += (cols.empty() ? "" : ", ") + c;
    exprs += (exprs.empty() ? "" : ", ") + expr;
  }
  const std::string sql = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                          std::to_string(rows - 1) + ") INSERT INTO " + table + "(" + cols + ") SELECT " + exprs +
                          " FROM n, " + table + " AS t WHERE t.bucket_id = " + std::to_string(bucket_id) +
                          " AND t.key = '" + kTemplateKey + "'";
  Check(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), db, sql.c_str());
}

struct CatalogFixture {
  CatalogFixture() : big_rows(BigRows()) {
    const auto start = std::chrono::steady_clock::now();
    const std::string path = BenchTempDir() + "/catalog.db";
    std::vector<std::pair<int64_t, int64_t>> buckets;  // id, rows
    {
      auto opened = catalog::Catalog::Open(path);
      if (!opened.ok()) std::abort();
      for (const auto& [name, rows] : {std::pair<const char*, int64_t>{"small", kSmallRows}, {"big", big_rows}}) {
        auto bucket = (*opened)->CreateBucket("bench-tenant", name);
        if (!bucket.ok() || !(*opened)->PutObject(TemplateObject(bucket->id, kTemplateKey)).ok()) std::abort();
        buckets.emplace_back(bucket->id, rows);
      }
    }
    sqlite3* db = nullptr;
    Check(sqlite3_open(path.c_str(), &db), db, "open");
    Check(sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr), db, "begin");
    const std::string key = "printf('dossiers/%07d/doc-%02d.pdf', i / 16, i % 16)";
    for (const auto& [id, rows] : buckets) {
      const std::string salt = std::to_string(id);
      CopyTemplate(db, "objects", id, rows, {{"key", key}, {"object_id", "printf('o" + salt + "-%030d', i)"}});
      CopyTemplate(db, "object_parts", id, rows, {{"key", key}, {"blob_id", "printf('b" + salt + "-%030d', i)"}});
    }
    Check(sqlite3_exec(db,
                       (std::string("DELETE FROM object_parts WHERE key = '") + kTemplateKey +
                        "'; DELETE FROM objects WHERE key = '" + kTemplateKey + "'; COMMIT")
                           .c_str(),
                       nullptr, nullptr, nullptr),
          db, "commit");
    Check(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr), db, "checkpoint");
    sqlite3_close(db);
    auto opened = catalog::Catalog::Open(path);
    if (!opened.ok()) std::abort();
    cat = std::move(opened).value();
    small_id = buckets[0].first;
    big_id = buckets[1].first;
    generation_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "catalog generator: %lld + %lld rows in %.1f s\n", static_cast<long long>(kSmallRows),
                 static_cast<long long>(big_rows), generation_seconds);
  }

  int64_t big_rows;
  std::unique_ptr<catalog::Catalog> cat;
  int64_t small_id = 0;
  int64_t big_id = 0;
  double generation_seconds = 0;
};

CatalogFixture& Fixture() {
  static CatalogFixture fixture;
  return fixture;
}

// range(0): 0 = the 10 k-key bucket, 1 = the 1 M-key bucket.
std::pair<int64_t, int64_t> BucketOf(const benchmark::State& state) {
  CatalogFixture& f = Fixture();
  return state.range(0) == 0 ? std::pair{f.small_id, kSmallRows} : std::pair{f.big_id, f.big_rows};
}

void SetRowsCounter(benchmark::State& state, int64_t rows) {
  state.counters["rows"] = benchmark::Counter(static_cast<double>(rows));
}

// A durable insert of a new key (one write transaction, synchronous=FULL).
void BM_CatalogInsert(benchmark::State& state) {
  const auto [bucket_id, rows] = BucketOf(state);
  catalog::ObjectRecord rec = TemplateObject(bucket_id, "");
  static int64_t serial = 0;
  for (auto _ : state) {
    rec.key = "inserted/" + std::to_string(serial++);
    rec.parts[0].blob_id = RandomId();
    if (!Fixture().cat->PutObject(rec).ok()) {
      state.SkipWithError("PutObject failed");
      break;
    }
  }
  SetRowsCounter(state, rows);
}
BENCHMARK(BM_CatalogInsert)->Arg(0)->Arg(1)->UseRealTime();

void BM_CatalogLookup(benchmark::State& state) {
  const auto [bucket_id, rows] = BucketOf(state);
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    auto rec = Fixture().cat->GetObject(bucket_id, KeyFor(static_cast<int64_t>(rng() % rows)));
    if (!rec.ok()) {
      state.SkipWithError("GetObject failed");
      break;
    }
    benchmark::DoNotOptimize(rec);
  }
  SetRowsCounter(state, rows);
}
BENCHMARK(BM_CatalogLookup)->Arg(0)->Arg(1)->UseRealTime();

// One ListObjectsV2 page of 1,000 keys starting at a random key (continuation), no delimiter.
void BM_CatalogListPage(benchmark::State& state) {
  const auto [bucket_id, rows] = BucketOf(state);
  std::mt19937_64 rng(11);
  catalog::ListQuery query;
  query.max_keys = 1000;
  for (auto _ : state) {
    query.start_after = KeyFor(static_cast<int64_t>(rng() % (rows - 2000)));
    auto page = Fixture().cat->ListObjects(bucket_id, query);
    if (!page.ok() || page->entries.size() != 1000) {
      state.SkipWithError("ListObjects did not return a full page");
      break;
    }
    benchmark::DoNotOptimize(page);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 1000);
  SetRowsCounter(state, rows);
}
BENCHMARK(BM_CatalogListPage)->Arg(0)->Arg(1)->UseRealTime();

// A "folder" page: prefix dossiers/, delimiter /, 500 common prefixes (16 keys each), as a
// browser or `aws s3 ls` walks the bucket. 500, not 1,000: the 10 k-key bucket holds only 625
// dossiers, and both buckets must answer the same page.
void BM_CatalogListDelimitedPage(benchmark::State& state) {
  constexpr int64_t kPage = 500;
  const auto [bucket_id, rows] = BucketOf(state);
  std::mt19937_64 rng(13);
  catalog::ListQuery query;
  query.prefix = "dossiers/";
  query.delimiter = "/";
  query.max_keys = kPage;
  const int64_t dossiers = rows / 16;
  for (auto _ : state) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "dossiers/%07lld/", static_cast<long long>(rng() % (dossiers - kPage - 1)));
    query.start_after = buf;
    auto page = Fixture().cat->ListObjects(bucket_id, query);
    if (!page.ok() || page->entries.size() != kPage) {
      state.SkipWithError("ListObjects did not return a full page");
      break;
    }
    benchmark::DoNotOptimize(page);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kPage);
  SetRowsCounter(state, rows);
}
BENCHMARK(BM_CatalogListDelimitedPage)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace coffre::bench
