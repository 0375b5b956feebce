// jemalloc's options for the `tessera` binary, read by jemalloc when the process starts (before
// `main`); the MALLOC_CONF environment variable still overrides each of them.
//
// thp:always, metadata_thp:always — jemalloc asks the kernel for transparent huge pages
// (madvise(MADV_HUGEPAGE)) on the memory it maps. Open tiles are millions of small states
// reached through hash tables, so with 4 KiB pages a backfill pays a TLB miss on most lookups
// and one page fault per 4 KiB of memory it touches first; with 2 MiB pages the 48 h backfill
// of docs/PERFORMANCE.md takes ~20 % less user time and 95 % fewer page faults. Where the
// kernel's THP setting is `never` this changes nothing.
extern "C" {
// NOLINTNEXTLINE(readability-identifier-naming): the name jemalloc looks up.
__attribute__((used, visibility("default"))) const char* malloc_conf =
    "thp:always,metadata_thp:always";
}
