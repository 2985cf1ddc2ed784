#include "core/experiment/profile.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

using Setter = std::function<Status(RunConfig&, const toml::node&)>;

std::string Where(const std::string& source, const toml::node& n) {
  return source + ":" + std::to_string(n.source().begin.line);
}

template <typename T>
Result<T> As(const toml::node& n, const char* what) {
  if (auto v = n.value<T>()) return *v;
  return Error{std::string("expected ") + what};
}

Result<uint64_t> AsCount(const toml::node& n) {
  auto v = n.value<int64_t>();
  if (!v || *v < 0) return Error{"expected a non-negative integer"};
  return static_cast<uint64_t>(*v);
}

const std::map<std::string, Setter>& Setters() {
  static const std::map<std::string, Setter> setters = [] {
    std::map<std::string, Setter> m;
    auto str = [](std::string RunConfig::*field) {
      return [field](RunConfig& c, const toml::node& n) -> Status {
        Result<std::string> v = As<std::string>(n, "a string");
        if (!v.ok()) return v.error();
        c.*field = *v;
        return {};
      };
    };
    m["backend"] = str(&RunConfig::backend);
    m["iotlb"] = str(&RunConfig::iotlb);
    m["mapping"] = str(&RunConfig::mapping);
    m["mode"] = str(&RunConfig::mode);
    m["poll"] = str(&RunConfig::poll);
    m["scatter"] = str(&RunConfig::scatter);
    m["dpdk_testpmd"] = str(&RunConfig::dpdk_testpmd);
    m["iommu"] = [](RunConfig& c, const toml::node& n) -> Status {
      Result<bool> v = As<bool>(n, "true or false");
      if (!v.ok()) return v.error();
      c.iommu = *v;
      return {};
    };
    // Exactly a boolean: toml++ would read 1 as true.
    auto flag = [](bool RunConfig::*field) {
      return [field](RunConfig& c, const toml::node& n) -> Status {
        auto v = n.value_exact<bool>();
        if (!v) return Error{"expected true or false"};
        c.*field = *v;
        return {};
      };
    };
    m["hugepages"] = flag(&RunConfig::hugepages);
    m["event_idx"] = flag(&RunConfig::event_idx);
    m["mrg_rxbuf"] = flag(&RunConfig::mrg_rxbuf);
    // An array of sizes ([64, 1500, 9000]) or the same as a string ("64,1500,9000").
    m["packet_sizes"] = [](RunConfig& c, const toml::node& n) -> Status {
      if (auto s = n.value<std::string>()) {
        Result<std::vector<uint32_t>> v = ParsePacketSizes(*s);
        if (!v.ok()) return v.error();
        c.packet_sizes = *v;
        return {};
      }
      const toml::array* a = n.as_array();
      if (!a) return Error{"expected an array of frame sizes or a string such as \"64,1500\""};
      c.packet_sizes.clear();
      for (const auto& e : *a) {
        auto v = e.value<int64_t>();
        if (!v || *v < 0 || *v > UINT32_MAX) return Error{"expected an array of frame sizes"};
        c.packet_sizes.push_back(static_cast<uint32_t>(*v));
      }
      return {};
    };
    m["page_size"] = [](RunConfig& c, const toml::node& n) -> Status {
      std::string text;
      if (auto s = n.value<std::string>())
        text = *s;
      else if (auto i = n.value<int64_t>())
        text = std::to_string(*i);
      else
        return Error{"expected \"4k\" or \"2m\""};
      Result<uint64_t> v = ParsePageSize(text);
      if (!v.ok()) return v.error();
      c.page_size = *v;
      return {};
    };
    auto u64 = [](auto field) {
      return [field](RunConfig& c, const toml::node& n) -> Status {
        using T = std::remove_reference_t<decltype(c.*field)>;
        Result<uint64_t> v = AsCount(n);
        if (!v.ok()) return v.error();
        if (*v > std::numeric_limits<T>::max())
          return Error{"at most " + std::to_string(std::numeric_limits<T>::max())};
        c.*field = static_cast<T>(*v);
        return {};
      };
    };
    m["packets"] = u64(&RunConfig::packets);
    m["seed"] = u64(&RunConfig::seed);
    m["queues"] = u64(&RunConfig::queue_pairs);
    m["ring_size"] = u64(&RunConfig::ring_size);
    m["packet_size"] = u64(&RunConfig::packet_size);
    m["rx_buffer_size"] = u64(&RunConfig::rx_buffer_size);
    m["mem_regions"] = u64(&RunConfig::mem_regions);
    m["flush_batch"] = u64(&RunConfig::flush_batch);
    m["storm_interval"] = u64(&RunConfig::storm_interval);
    m["storm_burst"] = u64(&RunConfig::storm_burst);
    m["working_set"] = [](RunConfig& c, const toml::node& n) -> Status {
      std::string text;
      if (auto s = n.value<std::string>())
        text = *s;
      else if (auto i = n.value<int64_t>(); i && *i >= 0)
        text = std::to_string(*i);
      else
        return Error{"expected a size: bytes, or a string such as \"256m\""};
      Result<uint64_t> v = ParseSize(text);
      if (!v.ok()) return v.error();
      c.working_set = *v;
      return {};
    };
    auto seconds = [](double RunConfig::*field) {
      return [field](RunConfig& c, const toml::node& n) -> Status {
        auto v = n.value<double>();
        if (!v || !(*v >= 0)) return Error{"expected a non-negative number of seconds"};
        c.*field = *v;
        return {};
      };
    };
    m["seconds"] = seconds(&RunConfig::seconds);
    m["timeout_seconds"] = seconds(&RunConfig::timeout_seconds);
    // CPU lists: an array of CPU numbers, or a string in hwloc's list syntax ("0-3,8").
    auto cpu_list = [](std::vector<int> RunConfig::*field) {
      return [field](RunConfig& c, const toml::node& n) -> Status {
        if (auto text = n.value<std::string>()) {
          Result<std::vector<int>> cpus = topology::ParseCpuList(*text);
          if (!cpus.ok()) return cpus.error();
          c.*field = *cpus;
          return {};
        }
        const toml::array* a = n.as_array();
        if (!a) return Error{"expected an array of CPU numbers"};
        (c.*field).clear();
        for (const auto& e : *a) {
          auto v = e.value<int64_t>();
          if (!v || *v < 0 || *v > topology::kMaxCpuId)
            return Error{"expected an array of CPU numbers"};
          (c.*field).push_back(static_cast<int>(*v));
        }
        return {};
      };
    };
    m["cpus"] = cpu_list(&RunConfig::cpus);
    m["backend_cpus"] = cpu_list(&RunConfig::backend_cpus);
    m["counters"] = [](RunConfig& c, const toml::node& n) -> Status {
      const toml::array* a = n.as_array();
      if (!a) return Error{"expected an array of event names"};
      c.counters.clear();
      for (const auto& e : *a) {
        auto v = e.value<std::string>();
        if (!v) return Error{"expected an array of event names"};
        c.counters.push_back(*v);
      }
      return {};
    };
    return m;
  }();
  return setters;
}

std::string KnownKeys() {
  std::string out;
  for (const auto& [k, _] : Setters()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

Status Apply(RunConfig& c, const std::string& key, const toml::node& n, const std::string& src) {
  auto it = Setters().find(key);
  if (it == Setters().end())
    return Error{Where(src, n) + ": unknown workload key '" + key + "' (known: " + KnownKeys() +
                 ")"};
  if (Status s = it->second(c, n); !s.ok())
    return Error{Where(src, n) + ": " + key + ": " + s.message()};
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
  std::string out;
  for (uint32_t size : config.packet_sizes) out += (out.empty() ? "" : ",") + std::to_string(size);
  return out;
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
