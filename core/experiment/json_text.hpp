// The two pieces of JSON text the records are written with (record_json.cpp): a quoted,
// escaped string, and a number (NaN and infinities as null: JSON has no such numbers).
#pragma once

#include <string>

namespace vhostlab::experiment {

std::string JsonQuote(const std::string& s);
std::string JsonNumber(double v);

}  // namespace vhostlab::experiment
