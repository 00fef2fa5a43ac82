#pragma once

// The command line of the bench tools: "--flag [value]" walked in order, every mistake (a
// missing or malformed value, an unknown flag) ending the process with status 2 and a usage
// line the tool supplies. Shared by flowd-loadgen and flowd-flow-replay.

#include <cerrno>
#include <cstdlib>
#include <string>

namespace flowd::bench {

// Holds argv by pointer: lives as long as main's arguments. Not thread-safe.
class arg_reader {
public:
    // `usage`: prints why and exits (never returns).
    arg_reader(int argc, char** argv, void (*usage)(char const* why))
        : argc_(argc), argv_(argv), usage_(usage) {}

    // Moves to the next flag; false at the end.
    bool next() {
        ++at_;
        if (at_ >= argc_) {
            return false;
        }
        flag_ = argv_[at_];
        return true;
    }

    [[nodiscard]] std::string const& flag() const { return flag_; }
    [[nodiscard]] bool is(char const* name) const { return flag_ == name; }

    std::string value() {
        if (at_ + 1 >= argc_) {
            fail("missing value for " + flag_);
        }
        return argv_[++at_];
    }

    unsigned long long number() {
        std::string const v = value();
        char* end = nullptr;
        errno = 0;
        unsigned long long const n = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || v[0] == '-' || errno != 0 || *end != '\0') {
            fail("not a whole number for " + flag_ + ": " + v);
        }
        return n;
    }

    double real() {
        std::string const v = value();
        char* end = nullptr;
        errno = 0;
        double const d = std::strtod(v.c_str(), &end);
        if (v.empty() || errno != 0 || *end != '\0') {
            fail("not a number for " + flag_ + ": " + v);
        }
        return d;
    }

    [[noreturn]] void unknown() { fail("unknown option " + flag_); }

    [[noreturn]] void fail(std::string const& why) {
        usage_(why.c_str());
        std::abort();  // usage_ exits; this keeps [[noreturn]] honest if it does not
    }

private:
    int argc_;
    char** argv_;
    void (*usage_)(char const*);
    int at_ = 0;
    std::string flag_;
};

}  // namespace flowd::bench
