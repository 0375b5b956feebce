#include "workspaces/kube/intent.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tessera::workspaces::kube {
namespace {

using nlohmann::json;

bool EqualQuantities(long double a, long double b) {
  if (a == b) return true;
  return std::fabs(a - b) <= 1e-12L * std::max(std::fabs(a), std::fabs(b));
}

std::optional<long double> QuantityOf(const json& v) {
  if (v.is_number()) return v.get<long double>();
  if (v.is_string()) return ParseQuantity(v.get<std::string>());
  return std::nullopt;
}

bool ScalarsEqual(const json& live, const json& intent, bool quantities) {
  if (live == intent) return true;
  if (!quantities) return false;
  std::optional<long double> a = QuantityOf(live);
  std::optional<long double> b = QuantityOf(intent);
  return a && b && EqualQuantities(*a, *b);
}

bool Satisfies(const json& live, const json& intent, bool quantities) {
  if (intent.is_object()) {
    if (!live.is_object()) return false;
    for (auto it = intent.begin(); it != intent.end(); ++it) {
      auto found = live.find(it.key());
      if (found == live.end()) {
        if (it.value().is_null()) continue;
        return false;
      }
      // Resource requests and limits (containers, volume claims) map names to quantities.
      const bool q = quantities || it.key() == "limits" || it.key() == "requests";
      if (!Satisfies(*found, it.value(), q)) return false;
    }
    return true;
  }
  if (intent.is_array()) {
    if (!live.is_array() || live.size() != intent.size()) return false;
    for (size_t i = 0; i < intent.size(); ++i) {
      if (!Satisfies(live[i], intent[i], false)) return false;
    }
    return true;
  }
  if (intent.is_null()) return live.is_null();
  return ScalarsEqual(live, intent, quantities);
}

}  // namespace

std::optional<long double> ParseQuantity(std::string_view s) {
  // <signedNumber><suffix>: digits with an optional fraction, then a binary (Ki…Ei), decimal
  // SI (n u m "" k M G T P E) or exponent (e3, E-2) suffix.
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits_start = i;
  bool any_digit = false;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, any_digit = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, any_digit = true;
  }
  if (!any_digit || digits_start > s.size()) return std::nullopt;
  const std::string number(s.substr(0, i));
  char* end = nullptr;
  const long double value = std::strtold(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return std::nullopt;
  const std::string_view suffix = s.substr(i);
  long double scale = 1;
  if (suffix.empty()) {
    scale = 1;
  } else if (suffix.size() == 2 && suffix[1] == 'i') {
    const std::string_view binary = "KMGTPE";
    const size_t p = binary.find(suffix[0]);
    if (p == std::string_view::npos) return std::nullopt;
    scale = std::pow(1024.0L, static_cast<long double>(p + 1));
  } else if (suffix.size() == 1 &&
             std::string_view("numkMGTPE").find(suffix[0]) != std::string_view::npos) {
    switch (suffix[0]) {
      case 'n':
        return value / 1e9L;  // divided: 500m is exactly 0.5
      case 'u':
        return value / 1e6L;
      case 'm':
        return value / 1e3L;
      case 'k':
        scale = 1e3L;
        break;
      case 'M':
        scale = 1e6L;
        break;
      case 'G':
        scale = 1e9L;
        break;
      case 'T':
        scale = 1e12L;
        break;
      case 'P':
        scale = 1e15L;
        break;
      default:
        scale = 1e18L;
        break;  // 'E'
    }
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t j = 1;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) ++j;
    if (j == suffix.size()) return std::nullopt;
    for (size_t k = j; k < suffix.size(); ++k) {
      if (suffix[k] < '0' || suffix[k] > '9') return std::nullopt;
    }
    if (suffix.size() - j > 3) return std::nullopt;
    scale = std::pow(10.0L, std::strtold(std::string(suffix.substr(1)).c_str(), nullptr));
  } else {
    return std::nullopt;
  }
  return value * scale;
}

std::string IntentDigest(const json& intent) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : intent.dump()) {  // nlohmann's objects are std::map: keys sorted
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));  // NOLINT
  return out;
}

bool LiveSatisfiesIntent(const json& live, const json& intent) {
  return Satisfies(live, intent, false);
}

}  // namespace tessera::workspaces::kube
