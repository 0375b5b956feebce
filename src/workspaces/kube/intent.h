#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

// Whether a live object already holds everything an apply intent says, so a controller can skip
// a server-side apply that would change nothing (and cost a write). Pure functions.
namespace tessera::workspaces::kube {

// True when every field of `intent` is present in `live` with an equal value:
//   - objects: each key of the intent, recursively (keys only in `live` — defaults, status,
//     other managers' fields — are ignored);
//   - arrays: the same length, element by element (an array the server or someone else grew is
//     a difference: applying again is then the safe answer);
//   - scalars: equal; the values of `limits` and `requests` maps (resource quantities, which
//     the server stores in canonical form) compare by value: 1 = "1", "0.5" = "500m",
//     "1Gi" = "1024Mi";
//   - an intent null matches an absent field.
// False means "apply": a false difference only costs a write; a false match would leave a
// child unrestored, so anything unusual compares unequal.
bool LiveSatisfiesIntent(const nlohmann::json& live, const nlohmann::json& intent);

// A stable digest of an intent (16 hex digits of FNV-1a 64 over its canonical JSON: object keys
// sorted). A controller stores it in an annotation of the object it applies, as part of the
// intent: then LiveSatisfiesIntent also fails when the intent lost a field (which server-side
// apply would remove, but a subset comparison cannot see).
std::string IntentDigest(const nlohmann::json& intent);

// A Kubernetes quantity ("500m", "1.5", "8Gi", "1e3", "2k") as a number; nullopt if `s` is not
// one.
std::optional<long double> ParseQuantity(std::string_view s);

}  // namespace tessera::workspaces::kube
