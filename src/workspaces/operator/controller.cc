#include "workspaces/operator/controller.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "workspaces/kube/informer.h"
#include "workspaces/kube/work_queue.h"
#include "workspaces/operator/render.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  const size_t slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

Controller::Controller(kube::KubeClient* client, Reconciler* reconciler, ControllerOptions options)
    : client_(client), reconciler_(reconciler), options_(std::move(options)) {}

void Controller::Run(const std::atomic<bool>& stop) {
  kube::WorkQueue queue(kube::WorkQueue::Options{.base_delay_ms = options_.backoff_base_ms,
                                                 .max_delay_ms = options_.backoff_max_ms,
                                                 .clock = options_.clock});
  kube::Informer::Options ws_options;
  ws_options.clock = options_.clock;
  ws_options.resync_period_ms = options_.resync_period_ms;
  kube::Informer workspaces(*client_, kube::WorkspaceType(), options_.ns, ws_options);
  workspaces.AddHandler(
      [&](const std::string& ns, const std::string& name) { queue.Add(ns + "/" + name); });

  kube::Informer::Options plain;
  plain.clock = options_.clock;
  kube::Informer templates(*client_, kube::WorkspaceTemplateType(), options_.ns, plain);
  templates.AddHandler([&](const std::string& ns, const std::string& name) {
    for (const json& ws : workspaces.List()) {
      const json& meta = ws["metadata"];
      const json spec = ws.value("spec", json::object());
      if (meta.value("namespace", "") == ns && spec.value("template", "default") == name) {
        queue.Add(ns + "/" + meta.value("name", ""));
      }
    }
  });

  // Children: a change made by someone else (a controller updating status, a user editing a
  // child) wakes the owning workspace. The instance label names it.
  kube::Informer::Options children_options = plain;
  children_options.label_selector = fmt::format("{}={}", kManagedByLabel, kManagedBy);
  auto enqueue_owner = [&](kube::Informer* informer) {
    return [&queue, informer](const std::string& ns, const std::string& name) {
      std::optional<json> child = informer->Get(ns, name);
      std::string owner;
      if (child) {
        const json labels = (*child)["metadata"].value("labels", json::object());
        owner = labels.value(kWorkspaceLabel, "");
      } else if (name.rfind("ws-", 0) == 0) {
        owner = name.substr(3);  // deleted: the name says whose it was
      }
      if (!owner.empty()) queue.Add(ns + "/" + owner);
    };
  };
  // Every kind of child: status changes (StatefulSet, RayCluster) move the phase, and a child
  // deleted or edited by someone else is restored at once (a missing AuthorizationPolicy would
  // leave the IDE open to anyone the gateway lets in).
  std::vector<std::unique_ptr<kube::Informer>> children;
  const std::vector<const kube::ResourceType*> child_types = {
      &kube::StatefulSetType(), &kube::RayClusterType(), &kube::ServiceType(),
      &kube::VirtualServiceType(), &kube::AuthorizationPolicyType()};
  for (const kube::ResourceType* type : child_types) {
    children.push_back(
        std::make_unique<kube::Informer>(*client_, *type, options_.ns, children_options));
    children.back()->AddHandler(enqueue_owner(children.back().get()));
  }

  std::vector<kube::Informer*> informers = {&workspaces, &templates};
  for (const auto& informer : children) informers.push_back(informer.get());
  std::vector<const kube::ResourceType*> served = {&kube::WorkspaceType(),
                                                   &kube::WorkspaceTemplateType()};
  for (const kube::ResourceType* type : child_types) served.push_back(type);
  if (options_.reader != nullptr) {
    for (size_t i = 0; i < served.size(); ++i) options_.reader->Serve(*served[i], informers[i]);
  }
  std::vector<std::thread> threads;
  threads.reserve(informers.size() + static_cast<size_t>(std::max(1, options_.workers)));
  for (kube::Informer* informer : informers) {
    threads.emplace_back([informer, &stop] {
      absl::Status s = informer->Run(stop);
      if (!s.ok()) fmt::print(stderr, "tessera-operator: informer: {}\n", StatusMessage(s));
    });
  }
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        std::optional<std::string> key = queue.Get(std::chrono::milliseconds(200));
        if (!key) continue;
        auto [ns, name] = SplitKey(*key);
        absl::StatusOr<ReconcileResult> result = reconciler_->Reconcile(ns, name);
        reconciles_.fetch_add(1);
        if (!result.ok()) {
          fmt::print(stderr, "tessera-operator: reconcile {} failed (retry in {} ms): {}\n", *key,
                     queue.NextDelayMillis(*key), StatusMessage(result.status()));
          queue.AddRateLimited(*key);
        } else {
          queue.Forget(*key);
          if (result->requeue_after_ms > 0) queue.AddAfter(*key, result->requeue_after_ms);
        }
        queue.Done(*key);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (options_.reader != nullptr) {
    for (const kube::ResourceType* type : served) options_.reader->Serve(*type, nullptr);
  }
  queue.ShutDown();
}

}  // namespace tessera::workspaces
