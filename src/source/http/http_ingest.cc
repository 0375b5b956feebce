#include "source/http/http_ingest.h"

#include <algorithm>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/column.h"
#include "common/errors.h"
#include "common/json_string.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "common/value.h"
#include "common/varint.h"
#include "source/format/ndjson_decoder.h"

namespace tessera::source {
namespace {

constexpr size_t kMaxReportedErrors = 5;
constexpr uint8_t kAnnotationVersion = 1;
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// Sizes `rows` for decoding `body`, so the batch (which is handed on, not reused) does not grow
// step by step: a slot per line in every column. The strings go to arena blocks of a quarter of
// the body (more blocks when they need more; their JSON is at most the body), so rows waiting
// to be handed over reserve about what they use.
void ReserveFor(std::string_view body, const std::vector<ColumnDef>& columns, DecodedRows* rows) {
  const size_t lines = static_cast<size_t>(CountNewlines(body)) + 1;
  RowBatch& batch = rows->batch;
  batch.arena = Arena(std::max<size_t>(body.size() / 4, 256));
  batch.event_time_ms.reserve(lines);
  batch.columns.resize(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    Column& col = batch.columns[c];
    col.Reset(columns[c].type, 0);
    col.valid.reserve(lines);
    switch (columns[c].type) {
      case DataType::kBool:
      case DataType::kInt64:
      case DataType::kTimestamp:
        col.i64.reserve(lines);
        break;
      case DataType::kDouble:
        col.f64.reserve(lines);
        break;
      case DataType::kString:
        col.str.reserve(lines);
        break;
      default:
        break;
    }
  }
}

std::string BodyFingerprint(std::string_view body) {
  const XXH128_hash_t h = XXH3_128bits(body.data(), body.size());
  std::string out;
  PutFixed64(&out, h.high64);
  PutFixed64(&out, h.low64);
  return out;
}

// What a batch id keeps besides the log's own counts: the body's fingerprint and the rest of
// the first answer, so a retry gets exactly that answer.
std::string EncodeAnnotation(std::string_view fingerprint, const IngestResult& r) {
  std::string out;
  out.push_back(static_cast<char>(kAnnotationVersion));
  PutBytes(&out, fingerprint);
  PutZigZag64(&out, r.late);
  PutZigZag64(&out, r.future);
  PutZigZag64(&out, r.field_errors);
  PutVarint64(&out, r.errors.size());
  for (const std::string& e : r.errors) PutBytes(&out, e);
  return out;
}

// Fills the annotated fields of `r`; *fingerprint receives the stored body fingerprint.
absl::Status DecodeAnnotation(std::string_view bytes, std::string* fingerprint, IngestResult* r) {
  ByteReader in(bytes);
  uint8_t version = 0;
  TESSERA_RETURN_IF_ERROR(in.Byte(&version, "batch annotation version"));
  if (version != kAnnotationVersion) {
    return DataLoss("batch annotation has unknown version {}", version);
  }
  std::string_view fp;
  TESSERA_RETURN_IF_ERROR(in.Bytes(&fp, "body fingerprint"));
  *fingerprint = std::string(fp);
  TESSERA_RETURN_IF_ERROR(in.ZigZag64(&r->late, "late"));
  TESSERA_RETURN_IF_ERROR(in.ZigZag64(&r->future, "future"));
  TESSERA_RETURN_IF_ERROR(in.ZigZag64(&r->field_errors, "field_errors"));
  uint64_t n = 0;
  TESSERA_RETURN_IF_ERROR(in.Varint64(&n, "error count"));
  if (n > kMaxReportedErrors) return DataLoss("batch annotation has {} errors", n);
  r->errors.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view e;
    TESSERA_RETURN_IF_ERROR(in.Bytes(&e, "error"));
    r->errors.emplace_back(e);
  }
  if (!in.empty()) return DataLoss("batch annotation has {} trailing bytes", in.remaining());
  return absl::OkStatus();
}

}  // namespace

std::string IngestResult::ToJson() const {
  std::string out = fmt::format("{{\"accepted\":{},\"rejected\":{}", accepted, rejected);
  if (late > 0) out += fmt::format(",\"late\":{}", late);
  if (future > 0) out += fmt::format(",\"future\":{}", future);
  if (field_errors > 0) out += fmt::format(",\"field_errors\":{}", field_errors);
  if (duplicate) out += ",\"duplicate\":true";
  if (!errors.empty()) {
    out += ",\"errors\":[";
    for (size_t i = 0; i < errors.size(); ++i) {
      if (i > 0) out += ',';
      AppendJsonString(errors[i], &out);
    }
    out += ']';
  }
  out += '}';
  return out;
}

void HttpIngest::ObserveMaxEventTime(int64_t ms) {
  int64_t seen = max_event_time_ms_.load();
  while (ms > seen && !max_event_time_ms_.compare_exchange_weak(seen, ms)) {
  }
}

absl::StatusOr<IngestResult> HttpIngest::Ingest(std::string_view batch_id, std::string_view body,
                                                std::unique_ptr<DecodedRows>* appended_rows) {
  // One decoder per thread (it owns a simdjson parser).
  thread_local std::unique_ptr<NdjsonDecoder> decoder;
  thread_local const HttpIngest* decoder_owner = nullptr;
  if (decoder == nullptr || decoder_owner != this) {
    decoder = std::make_unique<NdjsonDecoder>(options_.columns, options_.time_column);
    decoder_owner = this;
  }
  // The rows are decoded into memory that can be handed to the pipeline with the log entry.
  auto rows = std::make_unique<DecodedRows>();
  ReserveFor(body, options_.columns, rows.get());
  RowBatch& batch = rows->batch;
  IngestResult result;
  auto report = [&](std::string reason) {
    if (result.errors.size() < kMaxReportedErrors) result.errors.push_back(std::move(reason));
  };
  std::vector<int64_t> rejected_lines;
  DecodeStats stats;
  decoder->set_max_event_time_ms(
      LatestAcceptedEventTime(options_.clock->NowMillis(), options_.max_future_ms));
  decoder->Decode(body, /*padding_available=*/0, /*first_line_number=*/1, &batch, &stats,
                  [&](const Rejection& r) {
                    rejected_lines.push_back(r.line_number);
                    report(r.reason);
                    if (on_reject_) {
                      ChunkOrigin origin;
                      origin.input = batch_id.empty()
                                         ? std::string("http request")
                                         : "http request, batch_id " + JsonString(batch_id);
                      on_reject_(origin, r);
                    }
                  });
  result.rejected = stats.rejected;
  result.future = stats.future;
  result.field_errors = stats.field_errors;
  if (stats.field_errors > 0) {
    report(fmt::format("{} field(s) did not fit their column's type and were stored as NULL",
                       stats.field_errors));
  }

  // The log keeps exactly the accepted lines: blank, rejected and late ones are dropped.
  std::string payload;
  payload.reserve(body.size());
  std::vector<uint8_t> keep(batch.num_rows, 1);
  int64_t max_ts = max_event_time_ms_.load();
  int64_t body_max_ts = std::numeric_limits<int64_t>::min();
  int64_t line = 1;
  size_t row = 0;
  size_t next_rejected = 0;
  for (size_t pos = 0; pos < body.size(); ++line) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view text = body.substr(pos, nl - pos);
    pos = nl + 1;
    if (next_rejected < rejected_lines.size() && rejected_lines[next_rejected] == line) {
      ++next_rejected;
      continue;
    }
    // The decoder skips a byte order mark where the body starts; the log entry must not keep
    // it, or the pipeline would reject the line wherever the entry is not first in its chunk.
    if (line == 1 && text.starts_with(kUtf8Bom)) text.remove_prefix(kUtf8Bom.size());
    if (text.find_first_not_of(" \t\r\v\f") == std::string_view::npos) continue;
    // Not rejected and not blank: the decoder's next row.
    const size_t r = row++;
    const int64_t ts = batch.event_time_ms[r];
    if (max_ts != std::numeric_limits<int64_t>::min() && ts < max_ts - options_.lateness_ms) {
      ++result.late;
      keep[r] = 0;
      report(fmt::format("line {}: late: event time {} is older than the watermark {}", line,
                         FormatRfc3339Millis(ts),
                         FormatRfc3339Millis(max_ts - options_.lateness_ms)));
      continue;
    }
    max_ts = std::max(max_ts, ts);
    body_max_ts = std::max(body_max_ts, ts);
    ++result.accepted;
    payload.append(text);
    payload.push_back('\n');
  }
  if (result.accepted == 0 && batch_id.empty()) return result;
  const std::string fingerprint = batch_id.empty() ? "" : BodyFingerprint(body);
  TESSERA_ASSIGN_OR_RETURN(
      store::AppendResult stored,
      log_->Append(source_, batch_id, payload, result.accepted, result.rejected,
                   batch_id.empty() ? "" : EncodeAnnotation(fingerprint, result)));
  if (stored.duplicate) {
    IngestResult first;
    first.accepted = stored.accepted;
    first.rejected = stored.rejected;
    first.duplicate = true;
    first.seq = stored.seq;
    if (!stored.annotation.empty()) {  // empty: stored by an older build, no fingerprint
      std::string stored_fingerprint;
      TESSERA_RETURN_IF_ERROR(DecodeAnnotation(stored.annotation, &stored_fingerprint, &first));
      if (stored_fingerprint != fingerprint) {
        return AlreadyExists(
            "batch_id '{}' was already used for a different body (log entry {}): a retry must "
            "send the same body; new events need a new batch_id",
            batch_id, stored.seq);
      }
    }
    return first;
  }
  // Every later body is appended after this one, so the pipeline sees these rows first.
  ObserveMaxEventTime(body_max_ts);
  result.seq = stored.seq;
  if (appended_rows != nullptr && result.accepted > 0 &&
      (result.late == 0 || stats.field_errors == 0)) {
    // What decoding the entry's lines would count: each is a row; field errors are those of
    // the accepted rows (all of them when no row was late, none otherwise).
    if (result.late > 0) rows->KeepRows(keep);
    rows->stats = DecodeStats();
    rows->stats.lines = result.accepted;
    rows->stats.rows = result.accepted;
    rows->stats.field_errors = stats.field_errors;
    rows->max_event_time_ms = body_max_ts;
    *appended_rows = std::move(rows);
  }
  return result;
}

}  // namespace tessera::source
