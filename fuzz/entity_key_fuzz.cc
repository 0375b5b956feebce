// Fuzzes the text form of entity keys (engine/entity_key.h): any bytes, read as the key text of
// a view with 1-4 key columns, either fail cleanly or give a stored key whose text form parses
// back to the same stored key; and any bytes read as a stored key render as some text without
// crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/entity_key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t parts = 1 + data[0] % 4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto stored = tessera::engine::StoredKeyFromText(text, parts);
  if (stored.ok()) {
    const std::string again_text = tessera::engine::KeyText(*stored, parts);
    auto again = tessera::engine::StoredKeyFromText(again_text, parts);
    if (!again.ok() || *again != *stored) std::abort();
  }
  (void)tessera::engine::KeyText(text, parts);
  return 0;
}
