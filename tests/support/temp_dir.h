#pragma once

// A fresh directory under the system temporary directory for one test, removed with everything in
// it when the TempDir goes away. Declare it before the stores opened inside it, so that they close
// first.
//
//   test_support::TempDir dir_{"catalog"};  // /tmp/coffre-catalog-XXXXXX
//   Catalog::Open(dir_.str() + "/catalog.db");

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace coffre::test_support {

class TempDir {
 public:
  // Creates <temp>/coffre-<name>-XXXXXX; throws (gtest reports it as the test's failure) if it cannot.
  explicit TempDir(std::string_view name = "test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("coffre-" + std::string(name) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    path_ = tmpl;
    str_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::string& str() const { return str_; }

 private:
  std::filesystem::path path_;
  std::string str_;
};

}  // namespace coffre::test_support
