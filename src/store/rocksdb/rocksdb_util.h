#pragma once

// Helpers shared by the RocksDB store's translation units (tiles and event log): Slice views and
// the RocksDB-status and exception boundary. Internal to src/store/rocksdb.

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <exception>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/errors.h"

namespace tessera::store::rocksdb_internal {

inline std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
inline rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Maps a RocksDB status to an absl::Status naming the operation and the DB directory.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view op, const std::string& dir);

// Runs `body`, turning any exception (RocksDB allocation failures, or one thrown by a caller's
// callback) into an Internal status so none crosses the store boundary.
template <typename Fn>
auto Guard(std::string_view op, const std::string& dir, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return Internal("{} of {} threw: {}", op, dir, e.what());
  } catch (...) {
    return Internal("{} of {} threw a non-standard exception", op, dir);
  }
}

}  // namespace tessera::store::rocksdb_internal
