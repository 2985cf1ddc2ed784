// Minimal leveled logging to stderr. Never called inside a timed region or per packet.
#pragma once

#include <cstdarg>
#include <cstdio>

namespace vhostlab {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

// Process-wide threshold; the CLI's --verbose/--quiet set it. Default: info.
LogLevel& LogThreshold();

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define VL_ERROR(...) ::vhostlab::Log(::vhostlab::LogLevel::kError, __VA_ARGS__)
#define VL_WARN(...) ::vhostlab::Log(::vhostlab::LogLevel::kWarn, __VA_ARGS__)
#define VL_INFO(...) ::vhostlab::Log(::vhostlab::LogLevel::kInfo, __VA_ARGS__)
#define VL_DEBUG(...) ::vhostlab::Log(::vhostlab::LogLevel::kDebug, __VA_ARGS__)

}  // namespace vhostlab
