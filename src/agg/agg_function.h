#pragma once

// AggFunction<Op>: turns a small "op" (a State struct plus non-virtual AddBatch / Merge /
// Serialize / Deserialize / Finalize) into an AggregateFunction, in the spirit of DuckDB's
// aggregate templates. Internal to src/agg.
//
// Op requirements:
//   using State = …;                 default-constructible, move-assignable; its constructor is
//                                    Init, its destructor Destroy. States hold no pointers into
//                                    themselves, so they may be relocated with memcpy.
//   static constexpr uint8_t kVersion;
//   void AddBatch(std::byte* const* states, const Column* arg, const int64_t* event_time_ms,
//                 const uint32_t* rows, size_t n) const;
//                                    or, for a two-argument aggregate (SUM_BY(x, bucket)),
//   void AddBatch(std::byte* const* states, const Column* arg, const Column* arg2,
//                 const int64_t* event_time_ms, const uint32_t* rows, size_t n) const;
//   void Merge(State* dst, const State& src) const;             REQUIRES: dst != &src
//   void Serialize(const State& s, std::string* out) const;     after the version byte
//   absl::Status Deserialize(ByteReader* in, State* s) const;   into a fresh State
//   Value Finalize(const State& s) const;
// An op whose value depends on the read time (EXP_DECAY_*) also declares
//   Value FinalizeAt(const State& s, int64_t at_ms) const;
//   size_t HeapBytes(const State& s) const;
// An op that can merge its encoding without decoding it into a State first may declare
//   absl::Status MergeSerialized(ByteReader* in, State* dst) const;  current version only
// An op whose encoding changed may also declare
//   static constexpr uint8_t kOldestVersion;                   oldest version still read
//   absl::Status Deserialize(ByteReader* in, State* s, uint8_t version) const;
// and then reads every version in [kOldestVersion, kVersion] (tiles written by older builds).

#include <concepts>
#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "agg/aggregate.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/varint.h"

namespace tessera::agg::internal {

template <typename Op>
concept ReadsOlderVersions = requires {
  Op::kOldestVersion;
};

template <typename Op>
concept TakesTwoArgs = requires(const Op& op, std::byte* const* states, const Column* c) {
  op.AddBatch(states, c, c, static_cast<const int64_t*>(nullptr),
              static_cast<const uint32_t*>(nullptr), size_t{0});
};

template <typename Op>
concept MergesSerialized = requires(const Op& op, ByteReader* in, typename Op::State* s) {
  { op.MergeSerialized(in, s) } -> std::same_as<absl::Status>;
};

template <typename Op>
concept FinalizesAt = requires(const Op& op, const typename Op::State& s) {
  { op.FinalizeAt(s, int64_t{0}) } -> std::same_as<Value>;
};

template <typename Op>
class AggFunction final : public AggregateFunction {
 public:
  using State = typename Op::State;

  AggFunction(AggKind kind, DataType arg_type, DataType result_type, Op op)
      : kind_(kind), arg_type_(arg_type), result_type_(result_type), op_(std::move(op)) {}

  AggKind kind() const override { return kind_; }
  DataType arg_type() const override { return arg_type_; }
  DataType result_type() const override { return result_type_; }
  size_t state_size() const override { return sizeof(State); }
  size_t state_align() const override { return alignof(State); }

  void Init(std::byte* state) const override { new (state) State(); }
  void Destroy(std::byte* state) const override { Get(state)->~State(); }

  void AddBatch(std::byte* const* states, AggArgs args, const int64_t* event_time_ms,
                const uint32_t* rows, size_t n) const override {
    if constexpr (TakesTwoArgs<Op>) {
      op_.AddBatch(states, args.first, args.second, event_time_ms, rows, n);
    } else {
      op_.AddBatch(states, args.first, event_time_ms, rows, n);
    }
  }

  void Merge(std::byte* dst, const std::byte* src) const override {
    if (dst == src) {  // self-merge: merge a copy, so src stays unchanged while dst grows
      State copy;
      std::string bytes;
      op_.Serialize(*Get(src), &bytes);
      ByteReader reader(bytes);
      if (!DeserializeVersion(&reader, &copy, Op::kVersion).ok()) return;  // our own encoding
      op_.Merge(Get(dst), copy);
      return;
    }
    op_.Merge(Get(dst), *Get(src));
  }

  void Serialize(const std::byte* state, std::string* out) const override {
    out->push_back(static_cast<char>(Op::kVersion));
    op_.Serialize(*Get(state), out);
  }

  absl::Status Deserialize(std::string_view* in, std::byte* state) const override {
    ByteReader reader(*in);
    uint8_t version = 0;
    TESSERA_RETURN_IF_ERROR(ReadVersion(&reader, &version));
    State parsed;
    absl::Status s = DeserializeVersion(&reader, &parsed, version);
    if (!s.ok()) {
      return DataLoss("{} state: {}", AggKindName(kind_), StatusMessage(s));
    }
    *Get(state) = std::move(parsed);
    *in = reader.rest();
    return absl::OkStatus();
  }

  absl::Status MergeSerialized(std::string_view* in, std::byte* dst) const override {
    ByteReader reader(*in);
    uint8_t version = 0;
    TESSERA_RETURN_IF_ERROR(ReadVersion(&reader, &version));
    absl::Status s = MergeVersion(&reader, Get(dst), version);
    if (!s.ok()) return DataLoss("{} state: {}", AggKindName(kind_), StatusMessage(s));
    *in = reader.rest();
    return absl::OkStatus();
  }

  Value Finalize(const std::byte* state) const override { return op_.Finalize(*Get(state)); }
  Value FinalizeAt(const std::byte* state, int64_t at_ms) const override {
    if constexpr (FinalizesAt<Op>) {
      return op_.FinalizeAt(*Get(state), at_ms);
    } else {
      return op_.Finalize(*Get(state));
    }
  }

  size_t HeapBytes(const std::byte* state) const override { return op_.HeapBytes(*Get(state)); }

 private:
  absl::Status ReadVersion(ByteReader* reader, uint8_t* version) const {
    if (!reader->Byte(version, "version").ok()) {
      return DataLoss("{} state: empty encoding", AggKindName(kind_));
    }
    uint8_t oldest = Op::kVersion;
    if constexpr (ReadsOlderVersions<Op>) oldest = Op::kOldestVersion;
    if (*version < oldest || *version > Op::kVersion) {
      return DataLoss("{} state: unsupported encoding version {} (expected {})", AggKindName(kind_),
                      *version, Op::kVersion);
    }
    return absl::OkStatus();
  }
  // dst ⊕= the encoding: straight from the bytes where the op can, else decoded first.
  absl::Status MergeVersion(ByteReader* reader, State* dst, uint8_t version) const {
    if constexpr (MergesSerialized<Op>) {
      if (version == Op::kVersion) return op_.MergeSerialized(reader, dst);
    }
    State parsed;
    TESSERA_RETURN_IF_ERROR(DeserializeVersion(reader, &parsed, version));
    op_.Merge(dst, parsed);
    return absl::OkStatus();
  }
  absl::Status DeserializeVersion(ByteReader* reader, State* state, uint8_t version) const {
    if constexpr (ReadsOlderVersions<Op>) {
      return op_.Deserialize(reader, state, version);
    } else {
      return op_.Deserialize(reader, state);
    }
  }
  static State* Get(std::byte* p) { return std::launder(reinterpret_cast<State*>(p)); }
  static const State* Get(const std::byte* p) {
    return std::launder(reinterpret_cast<const State*>(p));
  }

  AggKind kind_;
  DataType arg_type_;
  DataType result_type_;
  Op op_;
};

}  // namespace tessera::agg::internal
