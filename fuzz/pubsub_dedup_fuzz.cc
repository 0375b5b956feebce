// libFuzzer target: random bytes into DedupWindow::DecodeSegment (the Pub/Sub dedup window's
// persisted segments). Decoding never crashes; an accepted segment re-encodes to bytes that
// decode to the same segment.
//
//   cmake --preset fuzz && cmake --build build/fuzz --target pubsub_dedup_fuzz
//   build/fuzz/fuzz/pubsub_dedup_fuzz -max_total_time=60

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "source/pubsub/dedup_window.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::source::DedupWindow;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string subscription;
  DedupWindow::Segment segment;
  if (!DedupWindow::DecodeSegment(bytes, "fuzz", &subscription, &segment).ok()) return 0;
  // Decoding accepts only ascending numeric ids, which encoding keeps, and minimal varints are
  // not required of the input: compare the decoded values of the re-encoding instead of bytes.
  const std::string again = DedupWindow::EncodeSegment(subscription, &segment);
  std::string subscription2;
  DedupWindow::Segment segment2;
  if (!DedupWindow::DecodeSegment(again, "fuzz", &subscription2, &segment2).ok() ||
      subscription2 != subscription || segment2.committed_ms != segment.committed_ms ||
      segment2.numeric != segment.numeric || segment2.other != segment.other) {
    std::abort();
  }
  return 0;
}
