#pragma once

#include <string>
#include <string_view>

namespace tessera::source {

// Appends the value of one message (Kafka record, Pub/Sub message) to `out` as one NDJSON line:
// every '\n' in it becomes ' ' (JSON allows whitespace there, and a raw newline inside a JSON
// string is invalid anyway), then '\n'. An empty value becomes the line "null", which the decoder
// rejects (not an object) instead of skipping it as a blank line, so every message is counted.
void AppendMessageLine(std::string_view value, std::string* out);

}  // namespace tessera::source
