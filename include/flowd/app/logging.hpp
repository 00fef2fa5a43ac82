#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace flowd {

// The named loggers (app, http, store), all writing to stderr through one sink.
struct loggers {
    std::shared_ptr<spdlog::logger> app;
    std::shared_ptr<spdlog::logger> http;
    std::shared_ptr<spdlog::logger> store;
};

// `format` is text (ISO-8601 time, level, logger) or json (one object per line for log
// shippers). Lines at info and above are flushed at once.
[[nodiscard]] loggers make_loggers(std::string const& level, std::string const& format);

}  // namespace flowd
