#include "core/experiment/profile.hpp"

#include <absl/strings/str_join.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>

#include "core/experiment/settings.hpp"

namespace vhostlab::experiment {
namespace {

std::string Where(const std::string& source, const toml::node& n) {
  return source + ":" + std::to_string(n.source().begin.line);
}

// A non-negative TOML integer as text (Setting::Parse then checks the range).
std::optional<std::string> CountText(const toml::node& n) {
  if (!n.is_integer()) return std::nullopt;
  const int64_t v = *n.value<int64_t>();
  if (v < 0) return std::nullopt;
  return std::to_string(v);
}

// A TOML array of non-negative integers (or of strings) as "a,b,c".
std::optional<std::string> ListText(const toml::node& n, bool strings) {
  const toml::array* a = n.as_array();
  if (!a) return std::nullopt;
  std::vector<std::string> items;
  for (const auto& e : *a) {
    std::optional<std::string> item =
        strings ? (e.is_string() ? std::optional<std::string>(*e.value<std::string>()) : std::nullopt)
                : CountText(e);
    // A comma inside a name would read as two names.
    if (!item || item->find(',') != std::string::npos) return std::nullopt;
    items.push_back(*item);
  }
  return absl::StrJoin(items, ",");
}

// A profile value as the text Setting::Parse takes, when its TOML type fits the setting's.
Status FromToml(const Setting& s, RunConfig& c, const toml::node& n) {
  std::optional<std::string> text;
  const char* expected = "";
  switch (s.type) {
    case SettingType::kText:
    case SettingType::kChoice:
    case SettingType::kDesign:
    case SettingType::kPoll:
      if (n.is_string()) text = *n.value<std::string>();
      expected = "expected a string";
      break;
    case SettingType::kOnOff:
    case SettingType::kFlag:
      // Exactly a boolean: toml++ would read 1 as true.
      if (auto b = n.value_exact<bool>()) text = *b ? "on" : "off";
      expected = "expected true or false";
      break;
    case SettingType::kCount:
      text = CountText(n);
      expected = "expected a non-negative integer";
      break;
    case SettingType::kSeconds:
      if (n.is_integer() || n.is_floating_point()) {
        char b[40];
        std::snprintf(b, sizeof(b), "%.17g", *n.value<double>());
        text = b;
      }
      expected = "expected a non-negative number of seconds";
      break;
    case SettingType::kPageSize:
    case SettingType::kSize:
      text = n.is_string() ? std::optional<std::string>(*n.value<std::string>()) : CountText(n);
      expected = s.type == SettingType::kPageSize
                     ? "expected \"4k\" or \"2m\""
                     : "expected a size: bytes, or a string such as \"256m\"";
      break;
    case SettingType::kFrameSizes:
    case SettingType::kCpuList:
      text = n.is_string() ? std::optional<std::string>(*n.value<std::string>())
                           : ListText(n, false);
      expected = s.type == SettingType::kCpuList
                     ? "expected an array of CPU numbers"
                     : "expected an array of frame sizes or a string such as \"64,1500\"";
      break;
    case SettingType::kNameList:
      text = ListText(n, true);
      expected = "expected an array of event names";
      break;
  }
  if (!text) return Error{expected};
  return s.Parse(c, *text);
}

std::string KnownKeys() {
  std::vector<std::string> keys;
  for (const Setting& s : RunSettings())
    if (!s.key.empty()) keys.emplace_back(s.key);
  std::sort(keys.begin(), keys.end());
  return absl::StrJoin(keys, ", ");
}

Status Apply(RunConfig& c, const std::string& key, const toml::node& n, const std::string& src) {
  const Setting* s = FindSettingByKey(key);
  if (!s)
    return Error{Where(src, n) + ": unknown workload key '" + key + "' (known: " + KnownKeys() +
                 ")"};
  if (Status st = FromToml(*s, c, n); !st.ok())
    return Error{Where(src, n) + ": " + key + ": " + st.message()};
  return {};
}

}  // namespace

Result<uint64_t> ParsePageSize(const std::string& text) {
  std::string t;
  for (char ch : text) t += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (t == "4k" || t == "4kib" || t == "4096") return uint64_t{4096};
  if (t == "2m" || t == "2mib" || t == "2097152") return uint64_t{2} << 20;
  return Error{"page size '" + text + "' is not supported (4k or 2m)"};
}

Result<uint64_t> ParseSize(const std::string& text) {
  std::size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10)
      return Error{"size '" + text + "' is too large"};
    v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
  }
  std::string unit;
  for (; i < text.size(); ++i)
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  if (unit == "k" || unit == "kib") shift = 10;
  if (unit == "m" || unit == "mib") shift = 20;
  if (unit == "g" || unit == "gib") shift = 30;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || shift < 0)
    return Error{"'" + text + "' is not a size (bytes, or a number with k, m or g: \"256m\")"};
  if (shift && v > (std::numeric_limits<uint64_t>::max() >> shift))
    return Error{"size '" + text + "' is too large"};
  return v << shift;
}

Result<std::vector<uint32_t>> ParsePacketSizes(const std::string& text) {
  std::vector<uint32_t> sizes;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t i = 0;
    while (i < item.size() && std::isspace(static_cast<unsigned char>(item[i]))) ++i;
    std::size_t j = item.size();
    while (j > i && std::isspace(static_cast<unsigned char>(item[j - 1]))) --j;
    item = item.substr(i, j - i);
    if (item.empty() || item.size() > 9 ||
        !std::all_of(item.begin(), item.end(), [](char ch) { return std::isdigit(ch); }))
      return Error{"'" + text + "' is not a list of frame sizes (e.g. \"64,1500,9000\")"};
    sizes.push_back(static_cast<uint32_t>(std::stoul(item)));
  }
  if (sizes.empty() || text.back() == ',')
    return Error{"'" + text + "' is not a list of frame sizes (e.g. \"64,1500,9000\")"};
  return sizes;
}

std::string FrameSizesName(const RunConfig& config) {
  if (config.packet_sizes.empty()) return std::to_string(config.packet_size);
  return absl::StrJoin(config.packet_sizes, ",");
}

std::string PageSizeName(uint64_t bytes) {
  if (bytes == 4096) return "4k";
  if (bytes == (2ull << 20)) return "2m";
  return std::to_string(bytes);
}

Result<Profile> ParseProfile(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Error{source + ":" + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
  Profile p;
  p.path = source;
  p.name = std::filesystem::path(source).stem().string();
  const toml::table* sweep = nullptr;
  for (const auto& [key, node] : root) {
    const std::string k(key.str());
    if (k == "name" || k == "description") {
      auto v = node.value<std::string>();
      if (!v) return Error{Where(source, node) + ": " + k + " must be a string"};
      (k == "name" ? p.name : p.description) = *v;
    } else if (k == "workload") {
      const toml::table* t = node.as_table();
      if (!t) return Error{Where(source, node) + ": [workload] must be a table"};
      for (const auto& [wk, wn] : *t)
        if (Status s = Apply(p.base, std::string(wk.str()), wn, source); !s.ok()) return s.error();
    } else if (k == "sweep") {
      sweep = node.as_table();
      if (!sweep) return Error{Where(source, node) + ": [sweep] must be a table"};
    } else {
      return Error{Where(source, node) + ": unknown key '" + k +
                   "' (a profile has name, description, [workload] and [sweep])"};
    }
  }
  p.base.profile = p.name;
  p.runs = {p.base};
  if (sweep) {
    for (const auto& [sk, sn] : *sweep) {
      const toml::array* values = sn.as_array();
      if (!values || values->empty())
        return Error{Where(source, sn) + ": sweep." + std::string(sk.str()) +
                     " must be a non-empty array"};
      std::vector<RunConfig> next;
      for (const RunConfig& r : p.runs) {
        for (const auto& v : *values) {
          RunConfig c = r;
          if (Status s = Apply(c, std::string(sk.str()), v, source); !s.ok()) return s.error();
          next.push_back(c);
        }
      }
      p.runs = std::move(next);
    }
  }
  return p;
}

Result<Profile> LoadProfile(const std::string& name_or_path) {
  std::vector<std::string> candidates;
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".toml")) {
    candidates.push_back(name_or_path);
  } else {
    candidates.push_back(std::string(VHOSTLAB_SOURCE_DIR) + "/profiles/" + name_or_path + ".toml");
    candidates.push_back("profiles/" + name_or_path + ".toml");
  }
  for (const auto& path : candidates) {
    std::ifstream in(path);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    return ParseProfile(ss.str(), path);
  }
  return Error{"profile '" + name_or_path + "' not found (looked for " + candidates.front() +
               (candidates.size() > 1 ? " and " + candidates.back() : "") + ")"};
}

}  // namespace vhostlab::experiment
