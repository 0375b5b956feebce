#pragma once

#include "common/clock.h"
#include "common/metrics.h"
#include "source/file/follow_source.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

// What the connectors of `tessera run` need from the process. Pointers are not owned and must
// outlive the sources created.
struct SourceEnv {
  store::TileStore* store = nullptr;  // checkpoints are read from (and written to) it
  store::EventLog* log = nullptr;     // the http connector's durable log
  const Clock* clock = SystemClock::Default();
  MetricsRegistry* metrics = nullptr;  // optional
  int stdin_fd = 0;                    // read by connector 'stdin'
  FollowOptions follow;                // connector 'file'
};

}  // namespace tessera::source
