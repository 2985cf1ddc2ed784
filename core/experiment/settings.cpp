// The run-settings table (see settings.hpp): VHOSTLAB_RUN_SETTINGS expanded into Setting rows,
// each with the parse/text/json operations of its type bound to its RunConfig member.
//
// One parser per SettingType serves the CLI, the profiles (after profile.cpp checks the TOML
// type) and Python, so that a range is stated once and enforced everywhere.
#include "core/experiment/settings.hpp"

#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/backend/backend.hpp"
#include "core/experiment/profile.hpp"
#include "core/iotlb/registry.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

// Debian's abseil is built without std::string_view as absl::string_view: split through an
// absl::string_view over the same bytes.
std::vector<std::string> Split(std::string_view text, char sep) {
  return absl::StrSplit(absl::string_view(text.data(), text.size()), sep);
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// "1g", "256m", "64k" or bytes: the shortest exact form (ParseSize reads it back).
std::string SizeName(uint64_t bytes) {
  if (bytes == 0) return "0";
  for (auto [shift, unit] : {std::pair{30, "g"}, std::pair{20, "m"}, std::pair{10, "k"}})
    if (bytes % (uint64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + unit;
  return std::to_string(bytes);
}

std::string Range(const Setting& s) {
  if (s.type == SettingType::kSize) return SizeName(s.min) + ".." + SizeName(s.max);
  return std::to_string(s.min) + ".." + std::to_string(s.max);
}

// The largest value the field's C++ type holds, so that no range can exceed it.
template <typename T>
uint64_t TypeMax() {
  if constexpr (std::is_integral_v<T>)
    return static_cast<uint64_t>(std::numeric_limits<T>::max());
  else
    return std::numeric_limits<uint64_t>::max();
}

// A decimal count in [min, max] (and the pow2/zero rules of the table's choices column).
Result<uint64_t> ParseCount(const Setting& s, std::string_view text, uint64_t type_max) {
  const uint64_t max = std::min(s.max, type_max);
  if (!AllDigits(text))
    return Error{"'" + std::string(text) + "' is not an integer in " + s.Allowed()};
  uint64_t v = 0;
  for (char ch : text) {
    const uint64_t digit = static_cast<uint64_t>(ch - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      return Error{std::string(text) + " is out of range (" + s.Allowed() + ")"};
    v = v * 10 + digit;
  }
  if (v == 0 && s.choices == "zero") return v;
  if (v < s.min || v > max || (s.choices == "pow2" && (v & (v - 1))))
    return Error{std::string(text) + " is out of range (" + s.Allowed() + ")"};
  return v;
}

Result<std::vector<uint64_t>> ParseNumberList(const Setting& s, std::string_view text,
                                              const char* what) {
  std::vector<uint64_t> out;
  if (text.empty()) return out;  // the empty list: the default (automatic, one size, ...)
  for (const std::string& raw : Split(text, ',')) {
    // "64, 1500" reads as "64,1500" (profiles have been written both ways).
    const std::string item(absl::StripAsciiWhitespace(raw));
    uint64_t v = 0;
    bool ok = AllDigits(item) && item.size() <= 9;
    for (char ch : item) v = v * 10 + static_cast<uint64_t>(ch - '0');
    if (!ok)
      return Error{"'" + std::string(text) + "' is not a list of " + what +
                   " (e.g. \"64,1500,9000\")"};
    if (v < s.min || v > s.max)
      return Error{std::string(what) + " must be " + Range(s) + ", not " + std::to_string(v)};
    out.push_back(v);
  }
  return out;
}

std::string SecondsText(double v) {
  // The shortest of 15 or 17 significant digits that reads back as the same double.
  char b[40];
  std::snprintf(b, sizeof(b), "%.15g", v);
  if (std::strtod(b, nullptr) != v) std::snprintf(b, sizeof(b), "%.17g", v);
  return b;
}

template <auto Field>
Status ParseField(const Setting& s, RunConfig& c, std::string_view text) {
  using T = std::remove_cvref_t<decltype(c.*Field)>;
  const std::string t(text);
  if constexpr (std::is_same_v<T, std::string>) {
    switch (s.type) {
      case SettingType::kChoice: {
        const std::vector<std::string> choices = Split(s.choices, '|');
        if (std::find(choices.begin(), choices.end(), t) == choices.end())
          return Error{"'" + t + "' is not " + s.Allowed()};
        break;
      }
      case SettingType::kDesign: {
        const std::vector<std::string> names = iotlb::DesignNames();
        if (std::find(names.begin(), names.end(), t) == names.end())
          return Error{"unknown IOTLB design '" + t + "' (" + s.Allowed() + ")"};
        break;
      }
      case SettingType::kPoll: {
        backend::PollMode mode;
        uint32_t spin_us = 0;
        if (Status st = backend::ParsePollMode(t, &mode, &spin_us); !st.ok()) return st;
        break;
      }
      default:
        break;
    }
    c.*Field = t;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text != "on" && text != "off") return Error{"'" + t + "' is not on or off"};
    c.*Field = text == "on";
  } else if constexpr (std::is_same_v<T, double>) {
    char* end = nullptr;
    const double v = t.empty() ? std::nan("") : std::strtod(t.c_str(), &end);
    const bool positive = s.min > 0;
    if (t.empty() || *end || !std::isfinite(v) || v < 0 || (positive && v == 0))
      return Error{"'" + t + "' is not " + s.Allowed()};
    c.*Field = v;
  } else if constexpr (std::is_integral_v<T>) {
    Result<uint64_t> v = Error{""};
    if (s.type == SettingType::kPageSize) {
      v = ParsePageSize(t);
    } else if (s.type == SettingType::kSize) {
      v = ParseSize(t);
      if (!v.ok()) return Error{v.error().message + "; takes " + s.Allowed()};
      if (*v < s.min || *v > s.max)
        return Error{t + " is out of range (" + s.Allowed() + ")"};
    } else {
      v = ParseCount(s, text, TypeMax<T>());
    }
    if (!v.ok()) return v.error();
    c.*Field = static_cast<T>(*v);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    (c.*Field).clear();
    for (std::string& item : Split(text, ','))
      if (!item.empty()) (c.*Field).push_back(std::move(item));
  } else if (s.type == SettingType::kCpuList) {
    // hwloc's list syntax (core/topology/cpuset.hpp): a plain list keeps its order ("1,0"),
    // ranges and masks ("0-3,8", "0xf") are sorted. Whether this machine has the CPUs is the
    // run's check (placement), so that a profile reads the same on every machine.
    (c.*Field).clear();
    if (text.find_first_not_of(" \t") == std::string_view::npos) return {};
    Result<std::vector<int>> v = topology::ParseCpuList(text);
    if (!v.ok()) return v.error();
    for (int cpu : *v)
      if (cpu < 0 || static_cast<uint64_t>(cpu) < s.min || static_cast<uint64_t>(cpu) > s.max)
        return Error{"CPU numbers must be " + Range(s) + ", not " + std::to_string(cpu)};
    (c.*Field).assign(v->begin(), v->end());
  } else {
    using Item = typename T::value_type;
    Result<std::vector<uint64_t>> v = ParseNumberList(s, text, "frame sizes");
    if (!v.ok()) return v.error();
    (c.*Field).assign(v->begin(), v->end());
    static_assert(std::is_integral_v<Item>, "a list setting holds numbers or names");
  }
  return {};
}

template <auto Field>
std::string FieldText(const Setting& s, const RunConfig& c) {
  using T = std::remove_cvref_t<decltype(c.*Field)>;
  const T& v = c.*Field;
  if constexpr (std::is_same_v<T, std::string>)
    return v;
  else if constexpr (std::is_same_v<T, bool>)
    return v ? "on" : "off";
  else if constexpr (std::is_same_v<T, double>)
    return SecondsText(v);
  else if constexpr (std::is_integral_v<T>)
    return s.type == SettingType::kPageSize ? PageSizeName(v)
           : s.type == SettingType::kSize   ? SizeName(v)
                                            : std::to_string(v);
  else
    return absl::StrJoin(v, ",");
}

template <auto Field>
nlohmann::ordered_json FieldJson(const RunConfig& c) {
  // NaN and infinities (a double setting) are written as null by nlohmann: JSON has no such
  // numbers.
  return nlohmann::ordered_json(c.*Field);
}

template <auto Field>
void ResetField(RunConfig& c) {
  c.*Field = RunConfig{}.*Field;
}

std::vector<Setting> MakeTable() {
  std::vector<Setting> table;
#define VHOSTLAB_SETTING_ROW(field, type, key, flag, metavar, min, max, choices, resets, help) \
  table.push_back(Setting{#field, SettingType::type, key, flag, metavar, min, max, choices,      \
                          resets, help, &ParseField<&RunConfig::field>,                          \
                          &FieldText<&RunConfig::field>, &FieldJson<&RunConfig::field>,          \
                          &ResetField<&RunConfig::field>});
  VHOSTLAB_RUN_SETTINGS(VHOSTLAB_SETTING_ROW)
#undef VHOSTLAB_SETTING_ROW
  return table;
}

}  // namespace

Status Setting::Parse(RunConfig& config, std::string_view text) const {
  if (Status st = parse_fn(*this, config, text); !st.ok()) return st;
  // packets and seconds exclude each other: the one set last wins.
  if (!resets.empty() && Text(config) != "0")
    if (const Setting* other = FindSetting(resets)) other->reset_fn(config);
  return {};
}

std::string Setting::Text(const RunConfig& config) const { return text_fn(*this, config); }

nlohmann::ordered_json Setting::Json(const RunConfig& config) const { return json_fn(config); }

std::string Setting::Allowed() const {
  switch (type) {
    case SettingType::kChoice: {
      const std::vector<std::string> c = Split(choices, '|');
      return absl::StrJoin(c.begin(), c.end() - 1, ", ") + " or " + std::string(c.back());
    }
    case SettingType::kDesign:
      return "designs: " + absl::StrJoin(iotlb::DesignNames(), ", ");
    case SettingType::kPoll:
      return "busy, adaptive[:US] or interrupt";
    case SettingType::kOnOff:
    case SettingType::kFlag:
      return "on or off";
    case SettingType::kSeconds:
      return min > 0 ? "a positive number of seconds" : "a number of seconds (0: unset)";
    case SettingType::kPageSize:
      return "4k or 2m";
    case SettingType::kCount:
      if (choices == "pow2") return "a power of two in " + Range(*this);
      if (choices == "zero") return Range(*this) + ", or 0 for the default";
      return Range(*this);
    case SettingType::kSize:
      return Range(*this) + " bytes";
    case SettingType::kFrameSizes:
      return "comma-separated frame sizes, each " + Range(*this);
    case SettingType::kCpuList:
      return "CPU numbers, each " + Range(*this) + ": a list (1,0: in that order) or hwloc " +
             "ranges (0-3,8)";
    case SettingType::kNameList:
      return "comma-separated names";
    case SettingType::kText:
      break;
  }
  return "any text";
}

const std::vector<Setting>& RunSettings() {
  static const std::vector<Setting> table = MakeTable();
  return table;
}

const Setting* FindSetting(std::string_view name) {
  for (const Setting& s : RunSettings())
    if (s.name == name) return &s;
  return nullptr;
}

const Setting* FindSettingByKey(std::string_view key) {
  if (key.empty()) return nullptr;
  for (const Setting& s : RunSettings())
    if (s.key == key) return &s;
  return nullptr;
}

nlohmann::ordered_json ConfigJson(const RunConfig& config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const Setting& s : RunSettings()) out[std::string(s.name)] = s.Json(config);
  return out;
}

}  // namespace vhostlab::experiment
