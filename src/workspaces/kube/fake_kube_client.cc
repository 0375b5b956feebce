#include "workspaces/kube/fake_kube_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "common/errors.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "workspaces/kube/kube_http.h"

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;
using Key = std::pair<std::string, std::string>;

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTerms(std::string_view s) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.emplace_back(Trim(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!Trim(cur).empty() || !out.empty()) out.emplace_back(Trim(cur));
  return out;
}

struct Requirement {
  enum class Op { kEq, kNe, kExists, kNotExists, kIn, kNotIn };
  std::string key;
  Op op;
  std::vector<std::string> values;
};

absl::StatusOr<std::vector<Requirement>> ParseLabelSelector(std::string_view selector) {
  std::vector<Requirement> out;
  for (const std::string& term : SplitTerms(selector)) {
    if (term.empty()) return InvalidArgument("label selector \"{}\" has an empty term", selector);
    Requirement r;
    size_t pos;
    if (term[0] == '!') {
      r.key = Trim(std::string_view(term).substr(1));
      r.op = Requirement::Op::kNotExists;
    } else if ((pos = term.find("!=")) != std::string::npos) {
      r.key = Trim(std::string_view(term).substr(0, pos));
      r.op = Requirement::Op::kNe;
      r.values.emplace_back(Trim(std::string_view(term).substr(pos + 2)));
    } else if ((pos = term.find("==")) != std::string::npos) {
      r.key = Trim(std::string_view(term).substr(0, pos));
      r.op = Requirement::Op::kEq;
      r.values.emplace_back(Trim(std::string_view(term).substr(pos + 2)));
    } else if ((pos = term.find('=')) != std::string::npos) {
      r.key = Trim(std::string_view(term).substr(0, pos));
      r.op = Requirement::Op::kEq;
      r.values.emplace_back(Trim(std::string_view(term).substr(pos + 1)));
    } else if (size_t open = term.find('('); open != std::string::npos) {
      size_t close = term.rfind(')');
      if (close == std::string::npos || close < open) {
        return InvalidArgument("label selector \"{}\": unbalanced parentheses", selector);
      }
      std::string head(Trim(std::string_view(term).substr(0, open)));
      size_t sp = head.rfind(' ');
      if (sp == std::string::npos) {
        return InvalidArgument("label selector \"{}\": cannot parse \"{}\"", selector, term);
      }
      r.key = Trim(std::string_view(head).substr(0, sp));
      std::string op(Trim(std::string_view(head).substr(sp + 1)));
      if (op == "in") {
        r.op = Requirement::Op::kIn;
      } else if (op == "notin") {
        r.op = Requirement::Op::kNotIn;
      } else {
        return InvalidArgument("label selector \"{}\": unknown operator \"{}\"", selector, op);
      }
      for (const std::string& v : SplitTerms(term.substr(open + 1, close - open - 1))) {
        r.values.push_back(v);
      }
    } else {
      r.key = term;
      r.op = Requirement::Op::kExists;
    }
    if (r.key.empty()) return InvalidArgument("label selector \"{}\" has an empty key", selector);
    out.push_back(std::move(r));
  }
  return out;
}

bool MatchesLabels(const std::vector<Requirement>& reqs, const json& object) {
  const json* labels = nullptr;
  if (object.contains("metadata") && object["metadata"].contains("labels")) {
    labels = &object["metadata"]["labels"];
  }
  for (const Requirement& r : reqs) {
    bool has = labels != nullptr && labels->contains(r.key) && (*labels)[r.key].is_string();
    std::string value = has ? (*labels)[r.key].get<std::string>() : "";
    bool in_values = has && std::find(r.values.begin(), r.values.end(), value) != r.values.end();
    bool ok = false;
    switch (r.op) {
      case Requirement::Op::kEq:
      case Requirement::Op::kIn:
        ok = in_values;
        break;
      case Requirement::Op::kNe:
      case Requirement::Op::kNotIn:
        ok = !in_values;
        break;
      case Requirement::Op::kExists:
        ok = has;
        break;
      case Requirement::Op::kNotExists:
        ok = !has;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

struct FieldRequirement {
  std::vector<std::string> path;
  bool equal;
  std::string value;
};

absl::StatusOr<std::vector<FieldRequirement>> ParseFieldSelector(std::string_view selector) {
  std::vector<FieldRequirement> out;
  for (const std::string& term : SplitTerms(selector)) {
    FieldRequirement r;
    size_t pos = term.find("!=");
    size_t len = 2;
    r.equal = pos == std::string::npos;
    if (r.equal) {
      pos = term.find("==");
      if (pos == std::string::npos) {
        pos = term.find('=');
        len = 1;
      }
    }
    if (pos == std::string::npos) {
      return InvalidArgument("field selector \"{}\": \"{}\" is not path=value", selector, term);
    }
    std::string path(Trim(std::string_view(term).substr(0, pos)));
    r.value = Trim(std::string_view(term).substr(pos + len));
    size_t start = 0;
    while (true) {
      size_t dot = path.find('.', start);
      r.path.push_back(path.substr(start, dot == std::string::npos ? dot : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool MatchesFields(const std::vector<FieldRequirement>& reqs, const json& object) {
  for (const FieldRequirement& r : reqs) {
    const json* cur = &object;
    for (const std::string& part : r.path) {
      if (cur == nullptr || !cur->is_object() || !cur->contains(part)) {
        cur = nullptr;
        break;
      }
      cur = &(*cur)[part];
    }
    std::string value = cur != nullptr && cur->is_string() ? cur->get<std::string>() : "";
    if ((value == r.value) != r.equal) return false;
  }
  return true;
}

std::string MetaString(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains(key) || !meta[key].is_string()) return "";
  return meta[key].get<std::string>();
}

// The object without metadata and status: what a generation bump is about.
json SpecPart(const json& object) {
  json out = object;
  if (out.is_object()) {
    out.erase("metadata");
    out.erase("status");
  }
  return out;
}

bool HasFinalizers(const json& object) {
  return object.contains("metadata") && object["metadata"].contains("finalizers") &&
         object["metadata"]["finalizers"].is_array() && !object["metadata"]["finalizers"].empty();
}

std::string Resource(const ResourceType& type) {
  return type.group.empty() ? type.plural : fmt::format("{}.{}", type.plural, type.group);
}

std::string CallString(std::string_view verb, const ResourceType& type, std::string_view ns,
                       std::string_view name, bool status, bool collection) {
  std::string out = fmt::format("{} {}{}", verb, type.plural, status ? "/status" : "");
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (collection) {
    if (!effective_ns.empty()) out += " " + effective_ns;
  } else {
    out += " ";
    if (!effective_ns.empty()) out += effective_ns + "/";
    out += name;
  }
  return out;
}

absl::Status Conflict(std::string_view verb, const std::string& path, const ResourceType& type,
                      std::string_view name) {
  return Aborted(
      "{} {}: Operation cannot be fulfilled on {} \"{}\": the object has been modified; please "
      "apply your changes to the latest version and try again",
      verb, path, Resource(type), name);
}

}  // namespace

FakeKubeClient::FakeKubeClient() : FakeKubeClient(Options{}) {}

FakeKubeClient::FakeKubeClient(Options options) : options_(std::move(options)) {}

absl::Status FakeKubeClient::Begin(const std::string& call) {
  std::function<absl::Status(const std::string&)> hook;
  {
    MutexLock lock(&mu_);
    calls_.push_back(call);
    hook = error_hook_;
  }
  if (hook) return hook(call);
  return absl::OkStatus();
}

FakeKubeClient::Collection& FakeKubeClient::CollectionFor(const ResourceType& type) {
  std::string key = fmt::format("{}/{}", type.group, type.plural);
  auto it = collections_.find(key);
  if (it == collections_.end()) {
    it = collections_.emplace(key, Collection{type, {}}).first;
  }
  return it->second;
}

bool FakeKubeClient::HasStatus(const ResourceType& type) const {
  return options_.status_subresource_plurals.count(type.plural) > 0;
}

std::string FakeKubeClient::NowRfc3339() const {
  // Kubernetes metadata timestamps have whole seconds.
  int64_t ms = options_.clock->NowMillis();
  std::string s = FormatRfc3339Millis(ms - ms % 1000);  // "….000Z"
  return s.substr(0, s.size() - 5) + "Z";
}

void FakeKubeClient::CommitLocked(Collection& c, const Key& key, json object,
                                  WatchEvent::Type type) {
  ++rv_;
  object["metadata"]["resourceVersion"] = std::to_string(rv_);
  json previous;  // the state before a MODIFIED, for label-selector transitions in Watch
  if (type == WatchEvent::Type::kDeleted) {
    c.objects.erase(key);
  } else {
    auto it = c.objects.find(key);
    if (type == WatchEvent::Type::kModified && it != c.objects.end()) previous = it->second;
    c.objects[key] = object;
  }
  history_.push_back(HistoryEvent{rv_, fmt::format("{}/{}", c.type.group, c.type.plural),
                                  WatchEvent{type, std::move(object)}, std::move(previous)});
  while (history_.size() > options_.max_history) {
    oldest_watchable_rv_ = history_.front().rv;
    history_.pop_front();
  }
  cv_.NotifyAll();
}

json FakeKubeClient::FinishUpdateLocked(Collection& c, const Key& key, const json& existing,
                                        json updated, bool status) {
  FillTypeMeta(c.type, updated);
  json& meta = updated["metadata"];
  const json& old_meta = existing["metadata"];
  // Fields the server owns.
  for (const char* field : {"uid", "creationTimestamp", "name", "namespace", "generation",
                            "deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"}) {
    if (old_meta.contains(field)) {
      meta[field] = old_meta[field];
    } else {
      meta.erase(field);
    }
  }
  if (status) {
    // Only the status changes.
    json result = existing;
    if (updated.contains("status")) {
      result["status"] = updated["status"];
    } else {
      result.erase("status");
    }
    updated = std::move(result);
  } else {
    if (HasStatus(c.type)) {
      if (existing.contains("status")) {
        updated["status"] = existing["status"];
      } else {
        updated.erase("status");
      }
    }
    if (SpecPart(updated) != SpecPart(existing)) {
      updated["metadata"]["generation"] = old_meta.value("generation", int64_t{0}) + 1;
    }
  }
  if (updated == existing) return existing;
  if (updated["metadata"].contains("deletionTimestamp") && !HasFinalizers(updated)) {
    c.objects[key] = updated;
    RemoveLocked(c, key, "Background");
    return updated;
  }
  CommitLocked(c, key, updated, WatchEvent::Type::kModified);
  return c.objects[key];
}

void FakeKubeClient::DeleteLocked(Collection& c, const Key& key, const std::string& propagation) {
  json& object = c.objects[key];
  if (HasFinalizers(object)) {
    if (object["metadata"].contains("deletionTimestamp")) return;
    json marked = object;
    marked["metadata"]["deletionTimestamp"] = NowRfc3339();
    marked["metadata"]["deletionGracePeriodSeconds"] = 0;
    CommitLocked(c, key, std::move(marked), WatchEvent::Type::kModified);
    return;
  }
  RemoveLocked(c, key, propagation);
}

void FakeKubeClient::RemoveLocked(Collection& c, const Key& key, const std::string& propagation) {
  json object = c.objects[key];
  std::string uid = MetaString(object, "uid");
  bool owner_namespaced = c.type.namespaced;
  CommitLocked(c, key, std::move(object), WatchEvent::Type::kDeleted);
  if (uid.empty()) return;
  // Garbage collection of dependents (same namespace, or any for a cluster-scoped owner).
  std::vector<std::pair<Collection*, Key>> dependents;
  for (auto& [name, dc] : collections_) {
    for (auto& [dkey, dobj] : dc.objects) {
      if (owner_namespaced && dkey.first != key.first) continue;
      const json& meta = dobj["metadata"];
      if (!meta.contains("ownerReferences") || !meta["ownerReferences"].is_array()) continue;
      for (const json& ref : meta["ownerReferences"]) {
        if (ref.is_object() && ref.value("uid", "") == uid) {
          dependents.emplace_back(&dc, dkey);
          break;
        }
      }
    }
  }
  for (auto& [dc, dkey] : dependents) {
    if (dc->objects.count(dkey) == 0) continue;  // removed meanwhile by a recursive GC
    if (propagation == "Orphan") {
      json updated = dc->objects[dkey];
      json refs = json::array();
      for (const json& ref : updated["metadata"]["ownerReferences"]) {
        if (!(ref.is_object() && ref.value("uid", "") == uid)) refs.push_back(ref);
      }
      if (refs.empty()) {
        updated["metadata"].erase("ownerReferences");
      } else {
        updated["metadata"]["ownerReferences"] = refs;
      }
      CommitLocked(*dc, dkey, std::move(updated), WatchEvent::Type::kModified);
    } else {
      DeleteLocked(*dc, dkey, "Background");
    }
  }
}

absl::StatusOr<json> FakeKubeClient::Get(const ResourceType& type, std::string_view ns,
                                         std::string_view name) {
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("GET", type, ns, name, false, false)); !s.ok()) return s;
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  auto it = c.objects.find(Key(effective_ns, std::string(name)));
  if (it == c.objects.end()) {
    return NotFound("GET {}: {} \"{}\" not found", ResourcePath(type, ns, name), Resource(type),
                    name);
  }
  return it->second;
}

absl::StatusOr<ListResult> FakeKubeClient::List(const ResourceType& type, std::string_view ns,
                                                const ListOptions& options) {
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("LIST", type, ns, "", false, true)); !s.ok()) return s;
  std::string path = ResourcePath(type, ns);
  absl::StatusOr<std::vector<Requirement>> labels = ParseLabelSelector(options.label_selector);
  if (!labels.ok()) return Annotate(labels.status(), fmt::format("LIST {}", path));
  absl::StatusOr<std::vector<FieldRequirement>> fields = ParseFieldSelector(options.field_selector);
  if (!fields.ok()) return Annotate(fields.status(), fmt::format("LIST {}", path));
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  ListResult result;
  result.resource_version = std::to_string(rv_);
  for (const auto& [key, object] : c.objects) {
    if (!effective_ns.empty() && key.first != effective_ns) continue;
    if (!MatchesLabels(*labels, object) || !MatchesFields(*fields, object)) continue;
    result.items.push_back(object);
  }
  return result;
}

absl::StatusOr<json> FakeKubeClient::Create(const ResourceType& type, std::string_view ns,
                                            const json& object) {
  std::string name = MetaString(object, "name");
  if (absl::Status s = Begin(CallString("CREATE", type, ns, name, false, false)); !s.ok()) {
    return s;
  }
  MutexLock lock(&mu_);
  return CreateLocked(type, ns, object, "POST");
}

absl::StatusOr<json> FakeKubeClient::CreateLocked(const ResourceType& type, std::string_view ns,
                                                  const json& object, std::string_view verb) {
  std::string path = ResourcePath(type, ns);
  if (!object.is_object()) {
    return InvalidArgument("{} {}: the object is not a JSON object", verb, path);
  }
  std::string name = MetaString(object, "name");
  std::string object_ns = MetaString(object, "namespace");
  std::string effective_ns;
  if (type.namespaced) {
    effective_ns = ns.empty() ? object_ns : std::string(ns);
    if (effective_ns.empty()) return InvalidArgument("{} {}: no namespace given", verb, path);
    if (!object_ns.empty() && object_ns != effective_ns) {
      return InvalidArgument(
          "{} {}: the namespace of the provided object does not match the namespace sent on "
          "the request",
          verb, path);
    }
  }
  Collection& c = CollectionFor(type);
  if (name.empty()) {
    std::string prefix = MetaString(object, "generateName");
    if (prefix.empty()) {
      return InvalidArgument(
          "{} {}: metadata.name: Required value: name or generateName is required", verb, path);
    }
    do {
      name = fmt::format("{}{:05d}", prefix, next_uid_++ % 100000);
    } while (c.objects.count(Key(effective_ns, name)) > 0);
  }
  Key key(effective_ns, name);
  if (c.objects.count(key) > 0) {
    return AlreadyExists("{} {}: {} \"{}\" already exists", verb, path, Resource(type), name);
  }
  json stored = object;
  FillTypeMeta(type, stored);
  json& meta = stored["metadata"];
  meta["name"] = name;
  if (type.namespaced) meta["namespace"] = effective_ns;
  meta["uid"] = fmt::format("fake-uid-{}", next_uid_++);
  meta["creationTimestamp"] = NowRfc3339();
  meta["generation"] = 1;
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  if (HasStatus(type)) stored.erase("status");
  CommitLocked(c, key, std::move(stored), WatchEvent::Type::kAdded);
  return c.objects[key];
}

absl::StatusOr<json> FakeKubeClient::Update(const ResourceType& type, std::string_view ns,
                                            const json& object, bool status) {
  std::string name = MetaString(object, "name");
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("UPDATE", type, ns, name, status, false)); !s.ok()) {
    return s;
  }
  std::string path = ResourcePath(type, ns, name, status ? "status" : "");
  if (name.empty()) return InvalidArgument("PUT {}: metadata.name is required", path);
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  Key key(effective_ns, name);
  auto it = c.objects.find(key);
  if (it == c.objects.end()) {
    return NotFound("PUT {}: {} \"{}\" not found", path, Resource(type), name);
  }
  std::string rv = MetaString(object, "resourceVersion");
  if (!rv.empty() && rv != MetaString(it->second, "resourceVersion")) {
    return Conflict("PUT", path, type, name);
  }
  json existing = it->second;
  return FinishUpdateLocked(c, key, existing, object, status);
}

absl::StatusOr<json> FakeKubeClient::MergePatch(const ResourceType& type, std::string_view ns,
                                                std::string_view name, const json& patch,
                                                bool status) {
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("PATCH", type, ns, name, status, false)); !s.ok()) {
    return s;
  }
  std::string path = ResourcePath(type, ns, name, status ? "status" : "");
  if (!patch.is_object()) return InvalidArgument("PATCH {}: the patch is not a JSON object", path);
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  Key key(effective_ns, std::string(name));
  auto it = c.objects.find(key);
  if (it == c.objects.end()) {
    return NotFound("PATCH {}: {} \"{}\" not found", path, Resource(type), name);
  }
  std::string rv = MetaString(patch, "resourceVersion");
  if (!rv.empty() && rv != MetaString(it->second, "resourceVersion")) {
    return Conflict("PATCH", path, type, name);
  }
  json existing = it->second;
  json patched = existing;
  patched.merge_patch(patch);
  return FinishUpdateLocked(c, key, existing, std::move(patched), status);
}

absl::StatusOr<json> FakeKubeClient::Apply(const ResourceType& type, std::string_view ns,
                                           const json& object, const ApplyOptions& options,
                                           bool status) {
  std::string name = MetaString(object, "name");
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("APPLY", type, ns, name, status, false)); !s.ok()) {
    return s;
  }
  std::string path = ResourcePath(type, ns, name, status ? "status" : "");
  if (!object.is_object() || name.empty()) {
    return InvalidArgument("PATCH {}: an applied object needs metadata.name", path);
  }
  if (options.field_manager.empty()) {
    return InvalidArgument("PATCH {}: fieldManager is required for apply", path);
  }
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  Key key(effective_ns, name);
  auto it = c.objects.find(key);
  if (it == c.objects.end()) {
    if (status) return NotFound("PATCH {}: {} \"{}\" not found", path, Resource(type), name);
    return CreateLocked(type, ns, object, "PATCH");
  }
  std::string rv = MetaString(object, "resourceVersion");
  if (!rv.empty() && rv != MetaString(it->second, "resourceVersion")) {
    return Conflict("PATCH", path, type, name);
  }
  json existing = it->second;
  json merged = existing;
  merged.merge_patch(object);
  return FinishUpdateLocked(c, key, existing, std::move(merged), status);
}

absl::Status FakeKubeClient::Delete(const ResourceType& type, std::string_view ns,
                                    std::string_view name, const DeleteOptions& options) {
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("DELETE", type, ns, name, false, false)); !s.ok()) {
    return s;
  }
  std::string path = ResourcePath(type, ns, name);
  MutexLock lock(&mu_);
  Collection& c = CollectionFor(type);
  Key key(effective_ns, std::string(name));
  auto it = c.objects.find(key);
  if (it == c.objects.end()) {
    return NotFound("DELETE {}: {} \"{}\" not found", path, Resource(type), name);
  }
  std::string uid = MetaString(it->second, "uid");
  if (!options.precondition_uid.empty() && options.precondition_uid != uid) {
    return Aborted(
        "DELETE {}: Precondition failed: UID in precondition: {}, UID in object meta: {}", path,
        options.precondition_uid, uid);
  }
  std::string rv = MetaString(it->second, "resourceVersion");
  if (!options.precondition_resource_version.empty() &&
      options.precondition_resource_version != rv) {
    return Aborted(
        "DELETE {}: Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in "
        "object meta: {}",
        path, options.precondition_resource_version, rv);
  }
  std::string propagation = options.propagation_policy;
  if (propagation != "Orphan") propagation = "Background";
  DeleteLocked(c, key, propagation);
  return absl::OkStatus();
}

absl::Status FakeKubeClient::Watch(const ResourceType& type, std::string_view ns,
                                   const WatchOptions& options,
                                   const std::function<bool(const WatchEvent&)>& fn) {
  std::string effective_ns = type.namespaced ? std::string(ns) : "";
  if (absl::Status s = Begin(CallString("WATCH", type, ns, "", false, true)); !s.ok()) return s;
  std::string path = ResourcePath(type, ns);
  absl::StatusOr<std::vector<Requirement>> labels = ParseLabelSelector(options.label_selector);
  if (!labels.ok()) return Annotate(labels.status(), fmt::format("WATCH {}", path));
  auto matches = [&](const json& object) {
    if (!effective_ns.empty() && MetaString(object, "namespace") != effective_ns) return false;
    return MatchesLabels(*labels, object);
  };
  const std::string collection = fmt::format("{}/{}", type.group, type.plural);
  using SteadyClock = std::chrono::steady_clock;
  const auto start = SteadyClock::now();
  const auto deadline = options.timeout_seconds > 0
                            ? start + std::chrono::seconds(options.timeout_seconds)
                            : SteadyClock::time_point::max();

  MutexLock lock(&mu_);
  ++active_watches_;
  struct Decrement {
    std::atomic<int>& active_watches;
    ~Decrement() { --active_watches; }
  } decrement{active_watches_};

  std::vector<WatchEvent> pending;
  int64_t cursor;
  if (options.resource_version.empty() || options.resource_version == "0") {
    for (const auto& [key, object] : CollectionFor(type).objects) {
      if (matches(object)) pending.push_back(WatchEvent{WatchEvent::Type::kAdded, object});
    }
    cursor = rv_;
  } else {
    char* end = nullptr;
    cursor = std::strtoll(options.resource_version.c_str(), &end, 10);
    if (end == nullptr || *end != '\0') {
      return InvalidArgument("WATCH {}: resourceVersion \"{}\" is not a number", path,
                             options.resource_version);
    }
  }
  const int64_t close_generation = close_generation_;
  auto last_sent = SteadyClock::now();
  while (true) {
    if (cursor < oldest_watchable_rv_) {
      return OutOfRange("WATCH {}: too old resource version: {} ({})", path, cursor,
                        oldest_watchable_rv_);
    }
    // Events after the cursor, in order.
    auto first = std::upper_bound(history_.begin(), history_.end(), cursor,
                                  [](int64_t rv, const HistoryEvent& e) { return rv < e.rv; });
    for (auto it = first; it != history_.end(); ++it) {
      if (it->collection != collection) continue;
      const bool now_matches = matches(it->event.object);
      if (it->event.type != WatchEvent::Type::kModified || it->previous.is_null()) {
        if (now_matches) pending.push_back(it->event);
        continue;
      }
      // As the API server: an object that starts matching the selector is ADDED, one that
      // stops matching is DELETED (with its new state).
      const bool matched = matches(it->previous);
      if (now_matches) {
        pending.push_back(matched ? it->event
                                  : WatchEvent{WatchEvent::Type::kAdded, it->event.object});
      } else if (matched) {
        pending.push_back(WatchEvent{WatchEvent::Type::kDeleted, it->event.object});
      }
    }
    cursor = std::max(cursor, rv_);
    if (!pending.empty()) {
      lock.Unlock();
      for (const WatchEvent& event : pending) {
        if (!fn(event)) return absl::OkStatus();
      }
      pending.clear();
      lock.Lock();
      last_sent = SteadyClock::now();
      continue;
    }
    if (options.cancel != nullptr && options.cancel->load()) {
      return Cancelled("WATCH {}: cancelled", path);
    }
    auto now = SteadyClock::now();
    if (close_generation_ != close_generation || now >= deadline) return absl::OkStatus();
    if (options.allow_bookmarks && options_.bookmark_interval_ms > 0 &&
        now - last_sent >= std::chrono::milliseconds(options_.bookmark_interval_ms)) {
      json bookmark = {{"apiVersion", type.ApiVersion()},
                       {"kind", type.kind},
                       {"metadata", {{"resourceVersion", std::to_string(cursor)}}}};
      pending.push_back(WatchEvent{WatchEvent::Type::kBookmark, std::move(bookmark)});
      continue;
    }
    cv_.WaitFor(&mu_, std::chrono::milliseconds(20));
  }
}

std::vector<std::string> FakeKubeClient::Calls() const {
  MutexLock lock(&mu_);
  return calls_;
}

void FakeKubeClient::ClearCalls() {
  MutexLock lock(&mu_);
  calls_.clear();
}

void FakeKubeClient::SetErrorHook(std::function<absl::Status(const std::string& call)> hook) {
  MutexLock lock(&mu_);
  error_hook_ = std::move(hook);
}

void FakeKubeClient::CompactHistory() {
  MutexLock lock(&mu_);
  history_.clear();
  oldest_watchable_rv_ = rv_;
}

void FakeKubeClient::CloseWatches() {
  MutexLock lock(&mu_);
  ++close_generation_;
  cv_.NotifyAll();
}

int FakeKubeClient::ActiveWatches() const {
  MutexLock lock(&mu_);
  return active_watches_;
}

int64_t FakeKubeClient::CurrentResourceVersion() const {
  MutexLock lock(&mu_);
  return rv_;
}

}  // namespace tessera::workspaces::kube
