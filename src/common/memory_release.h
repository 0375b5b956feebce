#pragma once

namespace tessera {

// Hands the pages of memory the process has freed back to the operating system now, where the
// allocator keeps them for reuse: jemalloc, which `tessera` links, returns them only after
// ~10 s (its dirty-page decay), so a phase that frees a lot and then allocates anew would count
// both in its resident set. For such phases (a backfill's flush frees each shard it has
// written). A no-op under an allocator without this control (glibc malloc, as in tests).
// Thread-safe.
void ReleaseFreedMemory();

}  // namespace tessera
