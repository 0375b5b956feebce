// The EventLog half of RocksDbTileStore: entries, batch-id records and trim marks in the same DB
// as the tiles (key layout in store/key_codec.h, invariants in rocksdb_tile_store.h).

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "common/errors.h"
#include "common/mutex.h"
#include "common/varint.h"
#include "store/key_codec.h"
#include "store/rocksdb/rocksdb_tile_store.h"
#include "store/rocksdb/rocksdb_util.h"

namespace tessera::store {

using rocksdb_internal::FromRocks;
using rocksdb_internal::Guard;
using rocksdb_internal::ToSlice;
using rocksdb_internal::View;

namespace {

// Value of a batch-id record: format version, then the AppendResult of the first append:
// varint seq, zigzag accepted, zigzag rejected, and (version 2) varint-length annotation.
constexpr uint8_t kAppendResultVersion = 2;

std::string EncodeAppendResult(const AppendResult& r) {
  std::string out;
  out.push_back(static_cast<char>(kAppendResultVersion));
  PutVarint64(&out, r.seq);
  PutZigZag64(&out, r.accepted);
  PutZigZag64(&out, r.rejected);
  PutBytes(&out, r.annotation);
  return out;
}

absl::StatusOr<AppendResult> DecodeAppendResult(std::string_view bytes) {
  ByteReader in(bytes);
  uint8_t version = 0;
  AppendResult r;
  if (absl::Status s = in.Byte(&version, "batch-id record version"); !s.ok()) return s;
  if (version < 1 || version > kAppendResultVersion) {
    return DataLoss("event log batch-id record has unknown version {}", version);
  }
  if (absl::Status s = in.Varint64(&r.seq, "batch-id record seq"); !s.ok()) return s;
  if (absl::Status s = in.ZigZag64(&r.accepted, "batch-id record accepted"); !s.ok()) return s;
  if (absl::Status s = in.ZigZag64(&r.rejected, "batch-id record rejected"); !s.ok()) return s;
  if (version >= 2) {
    std::string_view annotation;
    if (absl::Status s = in.Bytes(&annotation, "batch-id record annotation"); !s.ok()) return s;
    r.annotation = std::string(annotation);
  }
  if (!in.empty())
    return DataLoss("event log batch-id record has {} trailing bytes", in.remaining());
  return r;
}

std::string BigEndian(uint64_t v) {
  std::string out;
  PutBigEndian64(&out, v);
  return out;
}

}  // namespace

absl::StatusOr<RocksDbTileStore::LogSource*> RocksDbTileStore::LoadLogSource(
    std::string_view source) {
  if (auto it = log_sources_.find(source); it != log_sources_.end()) return &it->second;
  LogSource state;
  // The highest entry still stored (entries below a trim mark are gone, so take the max of both).
  const std::string prefix = EncodeLogPrefix(kLogEntryNamespace, source);
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;  // log keys are outside the tile prefix extractor's domain
  rocksdb::Slice lower(prefix);
  ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  it->SeekForPrev(
      EncodeLogSeqKey(kLogEntryNamespace, source, std::numeric_limits<uint64_t>::max()));
  if (it->Valid()) {
    std::string_view key = View(it->key());
    if (key.size() != prefix.size() + kLogSeqBytes || !key.starts_with(prefix)) {
      return DataLoss("RocksDB event log of {}: malformed entry key of {} bytes for source '{}'",
                      dir_, key.size(), source);
    }
    state.last_assigned = DecodeLogSeq(key);
  }
  if (absl::Status s = FromRocks(it->status(), "event log open (last entry)", dir_); !s.ok()) {
    return s;
  }
  rocksdb::PinnableSlice mark;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(),
                               EncodeLogPrefix(kLogTrimNamespace, source), &mark);
  if (s.ok()) {
    if (mark.size() != kLogSeqBytes) {
      return DataLoss("RocksDB event log of {}: trim mark of source '{}' has {} bytes", dir_,
                      source, mark.size());
    }
    state.trimmed = DecodeLogSeq(View(mark));
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "event log open (trim mark)", dir_);
  }
  state.last_assigned = std::max(state.last_assigned, state.trimmed);
  return &log_sources_.emplace(std::string(source), std::move(state)).first->second;
}

absl::StatusOr<AppendResult> RocksDbTileStore::Append(std::string_view source,
                                                      std::string_view batch_id,
                                                      std::string_view payload, int64_t accepted,
                                                      int64_t rejected,
                                                      std::string_view annotation) {
  if (read_only() || options_.disable_wal) {
    return FailedPrecondition(
        "event log Append to {}: the store was opened {}; a durable append needs the WAL", dir_,
        read_only() ? "read-only" : "with disable_wal");
  }
  return Guard("event log Append", dir_, [&]() -> absl::StatusOr<AppendResult> {
    MutexLock lock(&log_mu_);
    absl::StatusOr<LogSource*> loaded = LoadLogSource(source);
    if (!loaded.ok()) return loaded.status();
    LogSource* state = *loaded;
    const std::string batch_key = batch_id.empty() ? "" : EncodeLogBatchKey(source, batch_id);
    if (!batch_id.empty()) {
      // A concurrent append of the same id finishes first (its record is then visible below).
      log_cv_.Wait(&log_mu_, [&] { return !state->in_flight_batch_ids.contains(batch_id); });
      rocksdb::PinnableSlice record;
      rocksdb::Status s =
          db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), batch_key, &record);
      if (s.ok()) {
        absl::StatusOr<AppendResult> first = DecodeAppendResult(View(record));
        if (!first.ok()) return first.status();
        first->duplicate = true;
        return first;
      }
      if (!s.IsNotFound()) return FromRocks(s, "event log Append (batch id lookup)", dir_);
      state->in_flight_batch_ids.emplace(batch_id);
    }
    AppendResult result;
    result.seq = ++state->last_assigned;
    result.accepted = accepted;
    result.rejected = rejected;
    if (!batch_id.empty()) result.annotation = std::string(annotation);
    state->in_flight.insert(result.seq);
    lock.Unlock();
    // From here on the seq (and batch id) must leave the in-flight sets whatever happens, or
    // readers would stop at this seq forever.
    struct Finish {
      Mutex& mu;
      CondVar& cv;
      LogSource* state;
      uint64_t seq;
      std::string_view batch_id;
      ~Finish() {
        MutexLock lock(&mu);
        state->in_flight.erase(seq);
        if (auto it = state->in_flight_batch_ids.find(batch_id);
            it != state->in_flight_batch_ids.end()) {
          state->in_flight_batch_ids.erase(it);
        }
        cv.NotifyAll();
      }
    } finish{log_mu_, log_cv_, state, result.seq, batch_id};

    rocksdb::WriteBatch wb(payload.size() + batch_key.size() * 2 + 64);
    rocksdb::Status s =
        wb.Put(EncodeLogSeqKey(kLogEntryNamespace, source, result.seq), ToSlice(payload));
    if (s.ok() && !batch_id.empty()) {
      s = wb.Put(batch_key, EncodeAppendResult(result));
      if (s.ok()) {
        s = wb.Put(EncodeLogSeqKey(kLogBatchSeqNamespace, source, result.seq), ToSlice(batch_id));
      }
    }
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = true;  // RocksDB's write-group leader fsyncs once for every queued writer
      s = db_->Write(wo, &wb);
    }
    if (!s.ok()) return FromRocks(s, "event log Append", dir_);
    return result;
  });
}

absl::Status RocksDbTileStore::Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                                    const std::function<void(uint64_t, std::string_view)>& fn) {
  return Guard("event log Read", dir_, [&]() -> absl::Status {
    uint64_t readable = 0;
    {
      MutexLock lock(&log_mu_);
      absl::StatusOr<LogSource*> state = LoadLogSource(source);
      if (!state.ok()) return state.status();
      readable = (*state)->Readable();
    }
    if (after_seq >= readable) return absl::OkStatus();
    // The iterator is created after the watermark was taken, so it sees every seq <= readable
    // that was written; seqs above it may be visible already but are left for the next Read.
    const std::string lower = EncodeLogSeqKey(kLogEntryNamespace, source, after_seq + 1);
    const std::string upper = EncodeLogSeqKey(kLogEntryNamespace, source, readable + 1);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    ro.total_order_seek = true;
    ro.fill_cache = false;  // entries are read about once
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    size_t bytes = 0;
    for (it->Seek(lower); it->Valid(); it->Next()) {
      std::string_view key = View(it->key());
      if (key.size() != lower.size()) {
        return DataLoss("RocksDB event log Read of {}: malformed entry key of {} bytes", dir_,
                        key.size());
      }
      std::string_view payload = View(it->value());
      fn(DecodeLogSeq(key), payload);
      bytes += payload.size();
      if (bytes >= max_bytes) break;
    }
    return FromRocks(it->status(), "event log Read", dir_);
  });
}

absl::StatusOr<uint64_t> RocksDbTileStore::LastSeq(std::string_view source) {
  return Guard("event log LastSeq", dir_, [&]() -> absl::StatusOr<uint64_t> {
    MutexLock lock(&log_mu_);
    absl::StatusOr<LogSource*> state = LoadLogSource(source);
    if (!state.ok()) return state.status();
    return (*state)->Readable();
  });
}

absl::Status RocksDbTileStore::Trim(std::string_view source, uint64_t up_to_seq) {
  if (read_only()) {
    return FailedPrecondition("event log Trim of {}: the store was opened read-only", dir_);
  }
  return Guard("event log Trim", dir_, [&]() -> absl::Status {
    // trim_mu_ orders trims (trim marks only grow); log_mu_ is held only to read the state, so
    // appends keep flowing while the trim's write waits its turn behind a group fsync. A stale
    // Readable() is safe: it only grows, and every seq <= it is already written or failed, so no
    // entry can land below the range delete afterwards.
    MutexLock trim_lock(&trim_mu_);
    LogSource* state = nullptr;
    uint64_t up_to = 0;
    {
      MutexLock lock(&log_mu_);
      absl::StatusOr<LogSource*> loaded = LoadLogSource(source);
      if (!loaded.ok()) return loaded.status();
      state = *loaded;
      up_to = std::min(up_to_seq, state->Readable());
      if (up_to <= state->trimmed) return absl::OkStatus();
    }

    rocksdb::WriteBatch wb;
    rocksdb::Status s = wb.DeleteRange(EncodeLogSeqKey(kLogEntryNamespace, source, 0),
                                       EncodeLogSeqKey(kLogEntryNamespace, source, up_to + 1));
    if (s.ok()) s = wb.Put(EncodeLogPrefix(kLogTrimNamespace, source), BigEndian(up_to));
    const uint64_t retention = options_.log_batch_id_retention_entries;
    if (s.ok() && up_to > retention) {
      // Forget the batch ids of entries <= up_to - retention: the index names them in seq order.
      const std::string lower = EncodeLogSeqKey(kLogBatchSeqNamespace, source, 0);
      const std::string upper =
          EncodeLogSeqKey(kLogBatchSeqNamespace, source, up_to - retention + 1);
      rocksdb::Slice upper_slice(upper);
      rocksdb::ReadOptions ro;
      ro.iterate_upper_bound = &upper_slice;
      ro.total_order_seek = true;
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
      for (it->Seek(lower); s.ok() && it->Valid(); it->Next()) {
        s = wb.Delete(EncodeLogBatchKey(source, View(it->value())));
      }
      if (s.ok()) s = it->status();
      if (s.ok()) s = wb.DeleteRange(lower, upper);
    }
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.disableWAL = options_.disable_wal;
      wo.sync = options_.sync && !options_.disable_wal;
      s = db_->Write(wo, &wb);
    }
    if (!s.ok()) return FromRocks(s, "event log Trim", dir_);
    MutexLock lock(&log_mu_);
    state->trimmed = up_to;
    return absl::OkStatus();
  });
}

}  // namespace tessera::store
