#include "workspaces/kube/informer.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>
#include <utility>

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

std::string Meta(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains(key) || !meta[key].is_string()) return "";
  return meta[key].get<std::string>();
}

std::string KeyString(const std::string& ns, const std::string& name) {
  return fmt::format("{}/{}", ns, name);
}

}  // namespace

Informer::Informer(KubeClient& client, ResourceType type, std::string ns)
    : Informer(client, std::move(type), std::move(ns), Options{}) {}

Informer::Informer(KubeClient& client, ResourceType type, std::string ns, Options options)
    : client_(client), type_(std::move(type)), ns_(std::move(ns)), options_(std::move(options)) {}

void Informer::AddHandler(Handler handler) {
  MutexLock lock(&handlers_mu_);
  handlers_.push_back(std::move(handler));
}

std::optional<json> Informer::Get(const std::string& ns, const std::string& name) const {
  ReaderMutexLock lock(&mu_);
  auto it = cache_.find(KeyString(type_.namespaced ? ns : "", name));
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> Informer::List() const {
  ReaderMutexLock lock(&mu_);
  std::vector<json> out;
  out.reserve(cache_.size());
  for (const auto& [key, object] : cache_) out.push_back(object);
  return out;
}

std::string Informer::LastResourceVersion() const {
  ReaderMutexLock lock(&mu_);
  return last_rv_;
}

std::vector<Informer::CacheKey> Informer::Replace(std::vector<json> items, const std::string& rv) {
  std::unordered_map<std::string, json> fresh;
  std::vector<CacheKey> changed;
  WriterMutexLock lock(&mu_);
  for (json& item : items) {
    CacheKey key{Meta(item, "namespace"), Meta(item, "name")};
    std::string k = KeyString(key.ns, key.name);
    auto old = cache_.find(k);
    if (old == cache_.end() ||
        Meta(old->second, "resourceVersion") != Meta(item, "resourceVersion")) {
      changed.push_back(key);
    }
    fresh[k] = std::move(item);
  }
  for (const auto& [k, object] : cache_) {
    if (fresh.count(k) == 0) changed.push_back({Meta(object, "namespace"), Meta(object, "name")});
  }
  cache_ = std::move(fresh);
  last_rv_ = rv;
  return changed;
}

bool Informer::Apply(const WatchEvent& event, CacheKey* key) {
  std::string rv = Meta(event.object, "resourceVersion");
  WriterMutexLock lock(&mu_);
  if (!rv.empty()) last_rv_ = rv;
  if (event.type == WatchEvent::Type::kBookmark) return false;
  key->ns = Meta(event.object, "namespace");
  key->name = Meta(event.object, "name");
  if (key->name.empty()) return false;
  std::string k = KeyString(key->ns, key->name);
  if (event.type == WatchEvent::Type::kDeleted) {
    cache_.erase(k);
  } else {
    cache_[k] = event.object;
  }
  return true;
}

void Informer::Notify(const std::vector<CacheKey>& keys) {
  if (keys.empty()) return;
  std::vector<Handler> handlers;
  {
    MutexLock lock(&handlers_mu_);
    handlers = handlers_;
  }
  for (const CacheKey& key : keys) {
    for (const Handler& h : handlers) h(key.ns, key.name);
  }
}

void Informer::Resync() {
  std::vector<CacheKey> keys;
  {
    ReaderMutexLock lock(&mu_);
    for (const auto& [k, object] : cache_) {
      keys.push_back({Meta(object, "namespace"), Meta(object, "name")});
    }
  }
  Notify(keys);
}

absl::Status Informer::Run(const std::atomic<bool>& stop) {
  std::atomic<bool> done{false};
  std::thread resync;
  if (options_.resync_period_ms > 0) {
    resync = std::thread([this, &done] {
      while (!done.load()) {
        options_.sleep(options_.resync_period_ms, done);
        if (done.load()) break;
        Resync();
      }
    });
  }

  bool need_list = true;
  int failures = 0;
  int64_t backoff = options_.backoff_initial_ms;
  auto back_off = [&] {
    options_.sleep(backoff, stop);
    backoff = std::min(backoff * 2, options_.backoff_max_ms);
  };
  while (!stop.load()) {
    if (need_list) {
      ++lists_;
      ListOptions list_options;
      list_options.label_selector = options_.label_selector;
      absl::StatusOr<ListResult> list = client_.List(type_, ns_, list_options);
      if (!list.ok()) {
        ++list_errors_;
        back_off();
        continue;
      }
      std::vector<CacheKey> keys = Replace(std::move(list->items), list->resource_version);
      synced_.store(true);
      Notify(keys);
      need_list = false;
      failures = 0;
      backoff = options_.backoff_initial_ms;
    }

    WatchOptions watch_options;
    watch_options.resource_version = LastResourceVersion();
    watch_options.allow_bookmarks = true;
    watch_options.timeout_seconds = options_.watch_timeout_seconds;
    watch_options.label_selector = options_.label_selector;
    watch_options.cancel = &stop;
    ++watches_;
    int64_t events = 0;
    const int64_t started = options_.clock->MonotonicNanos();
    absl::Status s = client_.Watch(type_, ns_, watch_options, [&](const WatchEvent& event) {
      ++events;
      CacheKey key;
      if (Apply(event, &key)) Notify({key});
      return !stop.load();
    });
    if (stop.load()) break;
    if (s.ok()) {
      failures = 0;
      backoff = options_.backoff_initial_ms;
      // A server that ends every watch at once must not make this loop spin.
      if (events == 0 && options_.clock->MonotonicNanos() - started < 1'000'000'000) {
        options_.sleep(options_.backoff_initial_ms, stop);
      }
      continue;
    }
    if (IsGone(s)) {
      ++relists_on_gone_;
      need_list = true;
      continue;
    }
    ++watch_errors_;
    back_off();
    if (++failures >= options_.relist_after_failures) need_list = true;
  }

  done.store(true);
  if (resync.joinable()) resync.join();
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::kube
