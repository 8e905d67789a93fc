#pragma once

// A temporary directory for the benchmarks' databases, removed at exit.

#include <string>

namespace coffre::bench {

// Created once per process under $TMPDIR (default /tmp); removed, with its content, at exit.
const std::string& BenchTempDir();

}  // namespace coffre::bench
