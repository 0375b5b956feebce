#include "source/format/decoded_rows.h"

#include <algorithm>
#include <utility>

namespace tessera::source {
namespace {

template <typename T>
void AppendVector(std::vector<T>* to, const std::vector<T>& from) {
  to->insert(to->end(), from.begin(), from.end());
}

template <typename T>
void KeepEntries(std::vector<T>* v, std::span<const uint8_t> keep) {
  if (v->size() != keep.size()) return;  // a payload vector the column's type does not use
  size_t out = 0;
  for (size_t r = 0; r < keep.size(); ++r) {
    if (keep[r] != 0) (*v)[out++] = (*v)[r];
  }
  v->resize(out);
}

template <typename T>
size_t CapacityBytes(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

}  // namespace

void DecodedRows::Append(DecodedRows&& other) {
  if (other.batch.num_rows == 0 && other.batch.columns.empty()) {
    stats += other.stats;
    return;
  }
  if (batch.num_rows == 0 && batch.columns.empty()) {
    const DecodeStats mine = stats;
    std::vector<Arena> held = std::move(arenas);
    *this = std::move(other);
    stats += mine;
    for (Arena& a : held) arenas.push_back(std::move(a));
    return;
  }
  for (size_t c = 0; c < batch.columns.size() && c < other.batch.columns.size(); ++c) {
    Column& to = batch.columns[c];
    const Column& from = other.batch.columns[c];
    AppendVector(&to.valid, from.valid);
    AppendVector(&to.i64, from.i64);
    AppendVector(&to.f64, from.f64);
    AppendVector(&to.str, from.str);
  }
  AppendVector(&batch.event_time_ms, other.batch.event_time_ms);
  batch.num_rows += other.batch.num_rows;
  stats += other.stats;
  max_event_time_ms = std::max(max_event_time_ms, other.max_event_time_ms);
  arenas.push_back(std::move(other.batch.arena));
  for (Arena& a : other.arenas) arenas.push_back(std::move(a));
  other.arenas.clear();
  other.batch.num_rows = 0;
}

void DecodedRows::KeepRows(std::span<const uint8_t> keep) {
  for (Column& c : batch.columns) {
    KeepEntries(&c.valid, keep);
    KeepEntries(&c.i64, keep);
    KeepEntries(&c.f64, keep);
    KeepEntries(&c.str, keep);
  }
  KeepEntries(&batch.event_time_ms, keep);
  batch.num_rows = batch.event_time_ms.size();
  max_event_time_ms = std::numeric_limits<int64_t>::min();
  for (int64_t ts : batch.event_time_ms) max_event_time_ms = std::max(max_event_time_ms, ts);
}

size_t DecodedRows::MemoryBytes() const {
  size_t bytes = sizeof(DecodedRows) + CapacityBytes(batch.event_time_ms) +
                 CapacityBytes(batch.columns) + batch.arena.bytes_reserved();
  for (const Column& c : batch.columns) {
    bytes +=
        CapacityBytes(c.valid) + CapacityBytes(c.i64) + CapacityBytes(c.f64) + CapacityBytes(c.str);
  }
  for (const Arena& a : arenas) bytes += a.bytes_reserved();
  return bytes;
}

}  // namespace tessera::source
