// LD_PRELOAD shim for bench/audit_cost.py: fsync() and fdatasync() of the audit log's files
// (audit.db, audit.db-wal) return at once without flushing; every other file is flushed as usual.
// This isolates what waiting for the audit record's durability costs a request (blob, catalog and
// keystore flushes stay), which libeatmydata cannot: it skips every flush. Measurement only,
// never for a real deployment.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int is_audit_file(int fd) {
  char link[64];
  char path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  const char* base = strrchr(path, '/');
  base = base ? base + 1 : path;
  return strcmp(base, "audit.db") == 0 || strcmp(base, "audit.db-wal") == 0;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return is_audit_file(fd) ? 0 : real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return is_audit_file(fd) ? 0 : real(fd);
}
