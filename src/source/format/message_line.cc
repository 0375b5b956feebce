#include "source/format/message_line.h"

#include <cstring>

namespace tessera::source {

void AppendMessageLine(std::string_view value, std::string* out) {
  if (value.empty()) {
    out->append("null\n");
    return;
  }
  const size_t start = out->size();
  out->append(value);
  char* p = out->data() + start;
  char* end = p + value.size();
  while ((p = static_cast<char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)))) != nullptr) {
    *p++ = ' ';
  }
  out->push_back('\n');
}

}  // namespace tessera::source
