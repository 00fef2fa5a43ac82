#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <pthread.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <spdlog/spdlog.h>

#include "flowd/app/config.hpp"
#include "flowd/app/logging.hpp"
#include "flowd/app/server.hpp"
#include "flowd/auth/token_command.hpp"

extern char** environ;

namespace {

std::map<std::string, std::string> environment() {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string const kv = *e;
        if (auto eq = kv.find('='); eq != std::string::npos && kv.rfind("FLOWD_", 0) == 0) {
            env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
        }
    }
    return env;
}

// glibc gives a thread arena's free top back to the kernel (madvise) once it passes 128 KiB,
// and a POST B=1000 frees about that much: under load the arena shrank and grew again every
// few dozen batches, page-faulting to refill it. Keep up to 32 MiB of free top per arena,
// and serve blocks under 1 MiB from the arenas. An operator's own GLIBC_TUNABLES for malloc win.
void tune_malloc() {
#if defined(__GLIBC__)
    if (char const* t = std::getenv("GLIBC_TUNABLES"); t != nullptr && std::strstr(t, "malloc")) {
        return;
    }
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    // Hold SIGINT/SIGTERM until the shutdown coordinator can take them (server::run()), so
    // a signal during start-up is handled as a shutdown rather than killing the process.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    // A file past RLIMIT_FSIZE is a write error (EFBIG) the log handles like a full disk,
    // not a reason to die.
    std::signal(SIGXFSZ, SIG_IGN);
    std::vector<std::string> const args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "token") {
        return flowd::run_token_command({args.begin() + 1, args.end()}, std::cout, std::cerr);
    }
    flowd::command cmd;
    try {
        cmd = flowd::parse_command_line(args, environment());
        if (cmd.cfg.threads == 0) {
            cmd.cfg.threads = flowd::affinity_cpu_count();
        }
    } catch (flowd::config_error const& e) {
        std::cerr << "flowd: " << e.what() << '\n';
        return 2;
    }
    if (cmd.what == flowd::command::action::help) {
        std::cout << flowd::usage();
        return 0;
    }
    if (cmd.what == flowd::command::action::version) {
        std::cout << "flowd " << FLOWD_VERSION << " (" << FLOWD_COMMIT << ")\n";
        return 0;
    }
    flowd::loggers logs = flowd::make_loggers(cmd.cfg.log_level, cmd.cfg.log_format);
    for (std::string const& w : cmd.warnings) {
        logs.app->warn("{}", w);
    }
    int code = 1;
    try {
        flowd::server srv{cmd.cfg, logs};
        code = srv.run();
    } catch (flowd::config_error const& e) {
        std::cerr << "flowd: " << e.what() << '\n';
        code = 2;
    } catch (std::exception const& e) {
        logs.app->error("{}", e.what());
        code = 1;
    }
    spdlog::shutdown();
    return code;
}
