// The run-settings table (settings.hpp), walked setting by setting: a value of each setting
// round-trips through its text form (flags, Python), a profile (TOML) and the record's JSON,
// and the values just outside each range are refused with a message saying what is allowed.
// A new table line is covered here without touching this file.
#include "core/experiment/settings.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/experiment/profile.hpp"
#include "core/iotlb/registry.hpp"

namespace vhostlab::experiment {
namespace {

// A valid value of `s` other than its default, as text.
std::string Sample(const Setting& s) {
  const std::string def = s.Text(RunConfig{});
  switch (s.type) {
    case SettingType::kText:
      return "socket:/tmp/sample";
    case SettingType::kChoice:
      return std::string(s.choices.substr(s.choices.rfind('|') + 1));
    case SettingType::kDesign:
      return iotlb::DesignNames().back();
    case SettingType::kPoll:
      return "adaptive:50";
    case SettingType::kOnOff:
    case SettingType::kFlag:
      return def == "on" ? "off" : "on";
    case SettingType::kCount:
    case SettingType::kSize:
      return std::to_string(s.max == UINT64_MAX ? 12345 : s.max);
    case SettingType::kSeconds:
      return "2.5";
    case SettingType::kPageSize:
      return "2m";
    case SettingType::kFrameSizes:
    case SettingType::kCpuList:
      return std::to_string(s.min) + "," + std::to_string(s.max);
    case SettingType::kNameList:
      return "cycles,instructions";
  }
  return "";
}

// Values `s` must refuse: out of range, wrong form, trailing junk, overflow.
std::vector<std::string> Refused(const Setting& s) {
  switch (s.type) {
    case SettingType::kChoice:
      return {"bogus", ""};
    case SettingType::kDesign:
      return {"no-such-design"};
    case SettingType::kPoll:
      return {"sometimes"};
    case SettingType::kOnOff:
    case SettingType::kFlag:
      return {"maybe", "1", "true"};
    case SettingType::kCount: {
      std::vector<std::string> out = {"-1", "12x", " 1", "99999999999999999999999"};
      if (s.max < UINT64_MAX) out.push_back(std::to_string(s.max + 1));
      if (s.min > 1 || (s.min == 1 && s.choices != "zero")) out.push_back(std::to_string(s.min - 1));
      if (s.choices == "pow2") out.push_back(std::to_string(s.min + 1));
      return out;
    }
    case SettingType::kSize:
      return {std::to_string(s.max + 1), "12x", "-1"};
    case SettingType::kSeconds:
      return s.min > 0 ? std::vector<std::string>{"-1", "0", "2s", "nan"}
                       : std::vector<std::string>{"-1", "2s", "inf"};
    case SettingType::kPageSize:
      return {"8k", "4096x"};
    case SettingType::kFrameSizes:
      return {"64,,9000", "64,x", std::to_string(s.min - 1), std::to_string(s.max + 1)};
    case SettingType::kCpuList:
      return {"0,,1", "-1", std::to_string(s.max + 1)};
    case SettingType::kText:
    case SettingType::kNameList:
      return {};
  }
  return {};
}

// A JSON value as the TOML literal of a profile.
std::string TomlLiteral(const nlohmann::ordered_json& v) {
  if (v.is_array()) {
    std::string out = "[";
    for (const auto& e : v) out += (out.size() > 1 ? ", " : "") + TomlLiteral(e);
    return out + "]";
  }
  return v.dump();  // strings, booleans and numbers read the same in TOML
}

TEST(RunSettings, NamesAreUniqueAndEveryFlagAndKeyIsDistinct) {
  std::set<std::string_view> names, keys, flags;
  for (const Setting& s : RunSettings()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    if (!s.key.empty()) EXPECT_TRUE(keys.insert(s.key).second) << s.key;
    if (!s.flag.empty()) EXPECT_TRUE(flags.insert(s.flag).second) << s.flag;
    EXPECT_FALSE(s.help.empty()) << s.name;
    EXPECT_EQ(FindSetting(s.name), &s);
  }
  EXPECT_EQ(FindSetting("no_such_setting"), nullptr);
}

TEST(RunSettings, DefaultsReadBackThroughTheirText) {
  for (const Setting& s : RunSettings()) {
    RunConfig c;
    // packets' default 0 means "use seconds": not a value a user sets.
    if (s.name == "packets") continue;
    ASSERT_TRUE(s.Parse(c, s.Text(RunConfig{})).ok()) << s.name << " = " << s.Text(RunConfig{});
    EXPECT_EQ(s.Json(c), s.Json(RunConfig{})) << s.name;
  }
}

TEST(RunSettings, EachRoundTripsThroughTextTomlAndJson) {
  for (const Setting& s : RunSettings()) {
    SCOPED_TRACE(std::string(s.name));
    RunConfig set;
    const std::string sample = Sample(s);
    Status st = s.Parse(set, sample);
    ASSERT_TRUE(st.ok()) << sample << ": " << st.message();
    EXPECT_NE(s.Json(set), s.Json(RunConfig{})) << "the sample differs from the default";
    // Text: what Parse accepted is what Text writes back.
    RunConfig again;
    ASSERT_TRUE(s.Parse(again, s.Text(set)).ok()) << s.Text(set);
    EXPECT_EQ(s.Json(again), s.Json(set));
    // JSON: the record's config carries it under the field name.
    EXPECT_EQ(ConfigJson(set)[std::string(s.name)], s.Json(set));
    // TOML: a profile setting the same value in [workload].
    if (s.key.empty()) continue;
    const std::string toml = "[workload]\n" + std::string(s.key) + " = " + TomlLiteral(s.Json(set)) + "\n";
    Result<Profile> p = ParseProfile(toml, "t.toml");
    ASSERT_TRUE(p.ok()) << toml << p.error().message;
    EXPECT_EQ(s.Json(p->base), s.Json(set)) << toml;
  }
}

TEST(RunSettings, OutOfRangeValuesAreRefusedWithWhatIsAllowed) {
  for (const Setting& s : RunSettings()) {
    for (const std::string& bad : Refused(s)) {
      RunConfig c;
      const nlohmann::ordered_json before = s.Json(c);
      Status st = s.Parse(c, bad);
      ASSERT_FALSE(st.ok()) << s.name << " accepted '" << bad << "'";
      EXPECT_EQ(s.Json(c), before) << s.name << ": a refused value leaves the field alone";
      if (s.type != SettingType::kPoll && s.type != SettingType::kFrameSizes &&
          s.type != SettingType::kCpuList)
        EXPECT_NE(st.message().find(s.Allowed()), std::string::npos)
            << s.name << " '" << bad << "': " << st.message();
      // In a profile the error names file, line and key.
      if (s.key.empty() || bad.empty()) continue;
      const std::string toml = "[workload]\n" + std::string(s.key) + " = \"" + bad + "\"\n";
      Result<Profile> p = ParseProfile(toml, "t.toml");
      ASSERT_FALSE(p.ok()) << toml;
      EXPECT_NE(p.error().message.find("t.toml:2: " + std::string(s.key) + ": "), std::string::npos)
          << p.error().message;
    }
  }
}

TEST(RunSettings, IntegersAreNeverTruncated) {
  const Setting* queues = FindSetting("queue_pairs");
  ASSERT_NE(queues, nullptr);
  RunConfig c;
  Status st = queues->Parse(c, "4294967297");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of range (1..64)"), std::string::npos) << st.message();
  EXPECT_EQ(c.queue_pairs, 1u);
  Result<Profile> p = ParseProfile("[workload]\nqueues = 4294967297\n", "q.toml");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("q.toml:2: queues: 4294967297 is out of range"),
            std::string::npos)
      << p.error().message;
}

TEST(RunSettings, PacketsAndSecondsExcludeEachOther) {
  RunConfig c;
  ASSERT_TRUE(FindSetting("packets")->Parse(c, "1000").ok());
  ASSERT_TRUE(FindSetting("seconds")->Parse(c, "2").ok());
  EXPECT_EQ(c.packets, 0u);
  EXPECT_EQ(c.seconds, 2);
  ASSERT_TRUE(FindSetting("packets")->Parse(c, "5").ok());
  EXPECT_EQ(c.packets, 5u);
  EXPECT_EQ(c.seconds, 0);
}

TEST(RunSettings, UnknownProfileKeysAreErrorsNamingTheKey) {
  Result<Profile> p = ParseProfile("[workload]\nqueuez = 2\n", "u.toml");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("u.toml:2: unknown workload key 'queuez'"), std::string::npos);
  EXPECT_NE(p.error().message.find("queues"), std::string::npos) << "lists the known keys";
}

}  // namespace
}  // namespace vhostlab::experiment
