#include "flowd/metrics/process_collector.hpp"

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

namespace flowd {
namespace {

prometheus::MetricFamily one(std::string name, std::string help, prometheus::MetricType type,
                             double value) {
    prometheus::MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    f.metric.push_back(m);
    return f;
}

double boot_time_seconds() {
    std::ifstream in("/proc/stat");
    std::string key;
    while (in >> key) {
        if (key == "btime") {
            double v = 0;
            in >> v;
            return v;
        }
        in.ignore(1 << 16, '\n');
    }
    return 0;
}

double open_fds() {
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) {
        return 0;
    }
    double n = 0;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    closedir(d);
    // The directory handle itself was one of them.
    return n - 1;
}

}  // namespace

std::vector<prometheus::MetricFamily> process_collector::Collect() const {
    std::vector<prometheus::MetricFamily> out;
    std::ifstream in("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces.
    std::size_t const close = stat.rfind(')');
    if (close != std::string::npos) {
        std::istringstream fields(stat.substr(close + 2));
        std::string f;
        double utime = 0;
        double stime = 0;
        double starttime = 0;
        double rss_pages = 0;
        // Field 3 (state) is index 0 here; utime is field 14, stime 15, starttime 22, rss 24.
        for (int i = 3; fields >> f; ++i) {
            if (i == 14) {
                utime = std::stod(f);
            } else if (i == 15) {
                stime = std::stod(f);
            } else if (i == 22) {
                starttime = std::stod(f);
            } else if (i == 24) {
                rss_pages = std::stod(f);
                break;
            }
        }
        auto const ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
        auto const page = static_cast<double>(sysconf(_SC_PAGESIZE));
        out.push_back(one("process_cpu_seconds_total",
                          "Total user and system CPU time spent in seconds.",
                          prometheus::MetricType::Counter, (utime + stime) / ticks));
        out.push_back(one("process_resident_memory_bytes", "Resident memory size in bytes.",
                          prometheus::MetricType::Gauge, rss_pages * page));
        out.push_back(one("process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.",
                          prometheus::MetricType::Gauge, boot_time_seconds() + starttime / ticks));
    }
    out.push_back(one("process_open_fds", "Number of open file descriptors.",
                      prometheus::MetricType::Gauge, open_fds()));
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        out.push_back(one("process_max_fds", "Maximum number of open file descriptors.",
                          prometheus::MetricType::Gauge, static_cast<double>(lim.rlim_cur)));
    }
    return out;
}

}  // namespace flowd
