#include "workspaces/kube/cached_reader.h"

#include <fmt/format.h>

#include "common/errors.h"

namespace tessera::workspaces::kube {

std::string CachedReader::TypeKey(const ResourceType& type) {
  return fmt::format("{}/{}", type.ApiVersion(), type.plural);
}

void CachedReader::Serve(const ResourceType& type, const Informer* informer) {
  MutexLock lock(&mu_);
  if (informer == nullptr) {
    informers_.erase(TypeKey(type));
  } else {
    informers_[TypeKey(type)] = informer;
  }
}

absl::StatusOr<nlohmann::json> CachedReader::Get(const ResourceType& type, std::string_view ns,
                                                 std::string_view name) {
  const Informer* informer = nullptr;
  {
    MutexLock lock(&mu_);
    auto it = informers_.find(TypeKey(type));
    if (it != informers_.end()) informer = it->second;
  }
  if (informer != nullptr && informer->HasSynced()) {
    std::optional<nlohmann::json> cached = informer->Get(std::string(ns), std::string(name));
    if (!cached) return NotFound("{} {}/{} is not in the informer's cache", type.kind, ns, name);
    return *std::move(cached);
  }
  live_gets_.fetch_add(1);
  return client_->Get(type, ns, name);
}

}  // namespace tessera::workspaces::kube
