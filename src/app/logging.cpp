#include "flowd/app/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace flowd {
namespace {

// %j: the message as the inside of a JSON string.
class json_message_flag : public spdlog::custom_flag_formatter {
public:
    void format(spdlog::details::log_msg const& msg, std::tm const&,
                spdlog::memory_buf_t& dest) override {
        static constexpr char hex[] = "0123456789abcdef";
        for (char ch : msg.payload) {
            auto const c = static_cast<unsigned char>(ch);
            if (c == '"' || c == '\\') {
                dest.push_back('\\');
                dest.push_back(ch);
            } else if (c < 0x20) {
                char const esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
                dest.append(esc, esc + sizeof esc);
            } else {
                dest.push_back(ch);
            }
        }
    }
    [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<json_message_flag>();
    }
};

}  // namespace

loggers make_loggers(std::string const& level, std::string const& format) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    if (format == "json") {
        auto f = std::make_unique<spdlog::pattern_formatter>();
        f->add_flag<json_message_flag>('j').set_pattern(
            R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%j"})");
        sink->set_formatter(std::move(f));
    } else {
        sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l [%n] %v");
    }
    auto make = [&](std::string name) {
        auto l = std::make_shared<spdlog::logger>(std::move(name), sink);
        l->set_level(spdlog::level::from_str(level));
        // "listening on" and every lifecycle line must reach the reader at once.
        l->flush_on(spdlog::level::info);
        return l;
    };
    loggers out{make("app"), make("http"), make("store")};
    spdlog::set_default_logger(out.app);
    return out;
}

}  // namespace flowd
