#include "source/http/http_ingest.h"

#include <algorithm>

#include "common/column.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/value.h"
#include "source/file/ndjson_decoder.h"

namespace tessera::source {
namespace {
constexpr size_t kMaxReportedErrors = 5;
}  // namespace

std::string IngestResult::ToJson() const {
  std::string out = fmt::format("{{\"accepted\":{},\"rejected\":{}", accepted, rejected);
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

absl::StatusOr<IngestResult> HttpIngest::Ingest(std::string_view batch_id,
                                                std::string_view body) const {
  // One decoder per thread (it owns a simdjson parser); the batch is scratch.
  thread_local std::unique_ptr<NdjsonDecoder> decoder;
  thread_local const HttpIngest* decoder_owner = nullptr;
  if (decoder == nullptr || decoder_owner != this) {
    decoder = std::make_unique<NdjsonDecoder>(columns_, time_column_);
    decoder_owner = this;
  }
  thread_local RowBatch batch;
  IngestResult result;
  std::vector<int64_t> rejected_lines;
  DecodeStats stats;
  batch.Clear();
  decoder->Decode(body, /*padding_available=*/0, /*first_line_number=*/1, &batch, &stats,
                  [&](const Rejection& r) {
                    rejected_lines.push_back(r.line_number);
                    if (result.errors.size() < kMaxReportedErrors)
                      result.errors.push_back(r.reason);
                  });
  result.accepted = stats.rows;
  result.rejected = stats.rejected;

  // The log keeps exactly the accepted lines (blank and rejected ones are dropped).
  std::string payload;
  payload.reserve(body.size());
  int64_t line = 1;
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
    if (text.find_first_not_of(" \t\r\v\f") == std::string_view::npos) continue;
    payload.append(text);
    payload.push_back('\n');
  }
  if (result.accepted == 0 && batch_id.empty()) return result;
  TESSERA_ASSIGN_OR_RETURN(
      store::AppendResult appended,
      log_->Append(source_, batch_id, payload, result.accepted, result.rejected));
  if (appended.duplicate) {
    result.accepted = appended.accepted;
    result.rejected = appended.rejected;
    result.duplicate = true;
    result.errors.clear();
  }
  result.seq = appended.seq;
  return result;
}

}  // namespace tessera::source
