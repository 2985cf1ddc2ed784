#include "core/base/log.hpp"

#include <mutex>

namespace vhostlab {

LogLevel& LogThreshold() {
  static LogLevel level = LogLevel::kInfo;
  return level;
}

void Log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > static_cast<int>(LogThreshold())) return;
  static std::mutex mu;
  static const char* const kNames[] = {"error", "warn", "info", "debug"};
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "vhostlab %s: %s\n", kNames[static_cast<int>(level)], line);
}

}  // namespace vhostlab
