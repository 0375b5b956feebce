#include "workspaces/kube/leader_election.h"

#include <algorithm>
#include <functional>
#include <random>
#include <utility>

#include "common/errors.h"
#include "common/time_util.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

std::string SpecString(const json& spec, const char* key) {
  if (!spec.is_object() || !spec.contains(key) || !spec[key].is_string()) return "";
  return spec[key].get<std::string>();
}

int64_t SpecInt(const json& spec, const char* key) {
  if (!spec.is_object() || !spec.contains(key) || !spec[key].is_number_integer()) return 0;
  return spec[key].get<int64_t>();
}

}  // namespace

std::string FormatMicroTime(int64_t epoch_ms) {
  std::string s = FormatRfc3339Millis(epoch_ms);  // "…:00.123Z"
  s.insert(s.size() - 1, "000");
  return s;
}

LeaderElector::LeaderElector(KubeClient& client, Options options)
    : client_(client), options_(std::move(options)) {}

absl::Status LeaderElector::Validate() const {
  if (options_.ns.empty() || options_.lease_name.empty() || options_.identity.empty()) {
    return InvalidArgument(
        "leader election needs a namespace, a lease name and an identity "
        "(got \"{}\", \"{}\", \"{}\")",
        options_.ns, options_.lease_name, options_.identity);
  }
  if (!(options_.lease_duration_ms > options_.renew_deadline_ms &&
        options_.renew_deadline_ms > options_.retry_period_ms && options_.retry_period_ms > 0)) {
    return InvalidArgument(
        "leader election needs lease duration > renew deadline > retry period > 0 (got {} ms, "
        "{} ms, {} ms)",
        options_.lease_duration_ms, options_.renew_deadline_ms, options_.retry_period_ms);
  }
  return absl::OkStatus();
}

std::string LeaderElector::Holder() const {
  MutexLock lock(&mu_);
  return SpecString(observed_spec_, "holderIdentity");
}

json LeaderElector::Spec(int64_t now_ms, int64_t acquire_ms, int64_t transitions) const {
  int64_t seconds = std::max<int64_t>(1, (options_.lease_duration_ms + 999) / 1000);
  return json{{"holderIdentity", options_.identity},
              {"leaseDurationSeconds", seconds},
              {"acquireTime", FormatMicroTime(acquire_ms)},
              {"renewTime", FormatMicroTime(now_ms)},
              {"leaseTransitions", transitions}};
}

void LeaderElector::Observe(const json& spec) {
  int64_t mono_ms = options_.clock->MonotonicNanos() / 1'000'000;
  MutexLock lock(&mu_);
  if (spec != observed_spec_) {
    observed_spec_ = spec;
    observed_mono_ms_ = mono_ms;
  }
}

absl::StatusOr<bool> LeaderElector::TryAcquireOrRenew() {
  const int64_t now_ms = options_.clock->NowMillis();
  absl::StatusOr<json> lease = client_.Get(LeaseType(), options_.ns, options_.lease_name);
  if (absl::IsNotFound(lease.status())) {
    json object = {{"apiVersion", LeaseType().ApiVersion()},
                   {"kind", LeaseType().kind},
                   {"metadata", {{"name", options_.lease_name}, {"namespace", options_.ns}}},
                   {"spec", Spec(now_ms, now_ms, 0)}};
    absl::StatusOr<json> created = client_.Create(LeaseType(), options_.ns, object);
    if (absl::IsAlreadyExists(created.status()) || IsConflict(created.status())) return false;
    if (!created.ok()) return created.status();
    Observe(created->value("spec", json::object()));
    return true;
  }
  if (!lease.ok()) return lease.status();

  json spec = lease->value("spec", json::object());
  Observe(spec);
  const std::string holder = SpecString(spec, "holderIdentity");
  const bool mine = holder == options_.identity;
  if (!holder.empty() && !mine) {
    int64_t observed_mono_ms;
    {
      MutexLock lock(&mu_);
      observed_mono_ms = observed_mono_ms_;
    }
    int64_t mono_ms = options_.clock->MonotonicNanos() / 1'000'000;
    int64_t duration_ms = SpecInt(spec, "leaseDurationSeconds") * 1000;
    if (observed_mono_ms + duration_ms > mono_ms) return false;  // held, and not yet expired
  }

  json updated = *lease;
  if (mine) {
    json next = Spec(now_ms, now_ms, SpecInt(spec, "leaseTransitions"));
    if (std::string acquired = SpecString(spec, "acquireTime"); !acquired.empty()) {
      next["acquireTime"] = acquired;
    }
    updated["spec"] = std::move(next);
  } else {
    updated["spec"] = Spec(now_ms, now_ms, SpecInt(spec, "leaseTransitions") + 1);
  }
  absl::StatusOr<json> written = client_.Update(LeaseType(), options_.ns, updated);
  if (IsConflict(written.status())) return false;  // another candidate wrote first
  if (!written.ok()) return written.status();
  Observe(written->value("spec", json::object()));
  return true;
}

absl::Status LeaderElector::Release() {
  absl::StatusOr<json> lease = client_.Get(LeaseType(), options_.ns, options_.lease_name);
  if (absl::IsNotFound(lease.status())) return absl::OkStatus();
  if (!lease.ok()) return lease.status();
  json spec = lease->value("spec", json::object());
  if (SpecString(spec, "holderIdentity") != options_.identity) return absl::OkStatus();
  const int64_t now_ms = options_.clock->NowMillis();
  json updated = *lease;
  updated["spec"]["holderIdentity"] = "";
  updated["spec"]["leaseDurationSeconds"] = 1;
  updated["spec"]["acquireTime"] = FormatMicroTime(now_ms);
  updated["spec"]["renewTime"] = FormatMicroTime(now_ms);
  absl::StatusOr<json> written = client_.Update(LeaseType(), options_.ns, updated);
  if (!written.ok()) return written.status();
  Observe(written->value("spec", json::object()));
  return absl::OkStatus();
}

absl::Status LeaderElector::Run(const std::atomic<bool>& stop,
                                const std::function<void()>& on_started_leading,
                                const std::function<void()>& on_stopped_leading) {
  if (absl::Status s = Validate(); !s.ok()) return s;
  auto mono_ms = [this] { return options_.clock->MonotonicNanos() / 1'000'000; };

  std::minstd_rand rng(static_cast<uint32_t>(std::hash<std::string>()(options_.identity)));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  bool acquired = false;
  while (!stop.load()) {
    absl::StatusOr<bool> r = TryAcquireOrRenew();
    if (r.ok() && *r) {
      acquired = true;
      break;
    }
    double factor = 1.0 + std::max(0.0, options_.acquire_jitter) * unit(rng);
    options_.sleep(static_cast<int64_t>(static_cast<double>(options_.retry_period_ms) * factor),
                   stop);
  }
  if (!acquired) return absl::OkStatus();

  is_leader_.store(true);
  if (on_started_leading) on_started_leading();

  int64_t last_renew_ms = mono_ms();
  std::string lost_reason;
  while (!stop.load()) {
    options_.sleep(options_.retry_period_ms, stop);
    if (stop.load()) break;
    absl::StatusOr<bool> r = TryAcquireOrRenew();
    if (r.ok() && *r) {
      last_renew_ms = mono_ms();
      continue;
    }
    if (r.ok() && !Holder().empty() && Holder() != options_.identity) {
      lost_reason = fmt::format("\"{}\" holds it now", Holder());
      break;
    }
    if (mono_ms() - last_renew_ms >= options_.renew_deadline_ms) {
      lost_reason = r.ok() ? "could not renew it"
                           : fmt::format("could not renew it: {}", StatusMessage(r.status()));
      lost_reason += fmt::format(" within the renew deadline of {} ms", options_.renew_deadline_ms);
      break;
    }
  }

  is_leader_.store(false);
  // First stop acting, then let go: a replica that takes over after the release must not meet
  // this one's last reconciles still in flight.
  if (on_stopped_leading) on_stopped_leading();
  if (lost_reason.empty() && options_.release_on_cancel) {
    (void)Release();  // best effort: at worst the next leader waits for the lease to expire
  }
  if (!lost_reason.empty()) {
    return Aborted("lost leadership of lease {}/{}: {}", options_.ns, options_.lease_name,
                   lost_reason);
  }
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::kube
