#include "temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <string>

namespace coffre::bench {
namespace {

struct TempDir {
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/coffre-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

}  // namespace

const std::string& BenchTempDir() {
  static const TempDir dir;
  return dir.path;
}

}  // namespace coffre::bench
