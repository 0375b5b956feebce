#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "serve/http_server.h"
#include "serve/metric_history.h"
#include "source/dead_letter/recent_rejects.h"

namespace tessera::serve {

// The web console of `tessera run` / `tessera serve`, and what it needs beside the feature API:
//   GET /                                   the console (HTML; its files under /console/)
//   GET /console/{file}                     its script, styles and uPlot (compiled in)
//   GET /v1/console/history?families=a,b   the last minutes of every metric series
//                                           (MetricHistory's JSON; `families` optional)
//   GET /v1/console/rejects                 each source's last rejected lines:
//       {"sources":[{"source":…,"total":N,"recent":[RecentRejects records, newest first]}]}
// A sampler thread records the registry into the history every `interval`.
class Console {
 public:
  struct Options {
    std::chrono::milliseconds interval{2000};
    MetricHistory::Options history;  // default: 450 points, 15 minutes at 2 s
  };

  // `metrics` and `clock` are not owned and must outlive the console.
  Console(const MetricsRegistry* metrics, const Clock* clock, Options options);
  ~Console();  // stops the sampler
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Starts the sampler: one sample now, then one every interval. Idempotent.
  void Start();
  // Stops the sampler (joins it). Idempotent.
  void Stop();
  // Records one sample now (what the sampler does each interval).
  void SampleNow();

  // Serves `rejects` as `source`'s recent rejects. REQUIRES: before RegisterRoutes().
  void AddRejects(std::string source, std::shared_ptr<const source::RecentRejects> rejects);

  // REQUIRES: before server->Start().
  void RegisterRoutes(HttpServer* server);

  const MetricHistory& history() const { return history_; }

 private:
  HttpResponse History(const HttpRequest& request) const;
  HttpResponse Rejects() const;

  const MetricsRegistry* metrics_;
  const Clock* clock_;
  const Options options_;
  MetricHistory history_;
  std::vector<std::pair<std::string, std::shared_ptr<const source::RecentRejects>>> rejects_;
  Mutex mu_;
  CondVar wake_;  // stopping_ became true
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sampler_;
};

}  // namespace tessera::serve
