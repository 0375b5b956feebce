#include "common/memory_release.h"

#include <dlfcn.h>

#include <cstddef>

namespace tessera {
namespace {

// jemalloc's control interface, looked up at run time so that nothing links against it.
using MallctlFn = int (*)(const char* name, void* old, size_t* old_len, void* value,
                          size_t value_len);

MallctlFn Mallctl() {
  static const MallctlFn fn = reinterpret_cast<MallctlFn>(dlsym(RTLD_DEFAULT, "mallctl"));
  return fn;
}

}  // namespace

void ReleaseFreedMemory() {
  // 4096 = MALLCTL_ARENAS_ALL: every arena's unused dirty pages.
  if (MallctlFn mallctl = Mallctl()) mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
}

}  // namespace tessera
