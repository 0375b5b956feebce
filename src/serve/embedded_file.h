#pragma once

#include <string_view>
#include <vector>

namespace tessera::serve {

// A file compiled into the binary (cmake/embed_files.cmake).
struct EmbeddedFile {
  std::string_view name;  // e.g. "index.html"
  std::string_view bytes;
};

// The web console's files: src/serve/console/web/* and uPlot's dist files (npm, installed by
// scripts/install-console-deps.sh).
const std::vector<EmbeddedFile>& ConsoleFiles();

}  // namespace tessera::serve
