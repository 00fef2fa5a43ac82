// flowd-flow-replay: sends recorded NetFlow/IPFIX datagrams over UDP at an open-loop rate,
// for the flow exporters' figures of `make bench` (scripts/bench-flow.sh).
//
//   flowd-flow-replay --file RECORDED --port PORT [--host 127.0.0.1] --rate DATAGRAMS_PER_S
//                     [--seconds 3]
//   flowd-flow-replay --file RECORDED --ceiling [--seconds 3]
//
// RECORDED holds datagrams as [length, 2 bytes big-endian][datagram] (what
// scripts/bench-flow.sh captured from softflowd). They are sent round robin, in order, so
// templates precede their data. Before sending, the file is decoded once (flowd's own
// decoder) to know how many flow records each datagram carries, and the last line says
// "RESULT datagrams=N records=R seconds=S": what a collector must have counted.
// --ceiling sends as fast as one thread can to a socket of its own nobody reads: the
// replayer's own ceiling.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.hpp"
#include "flowd/flow/packet_decoder.hpp"

namespace {

struct options {
    std::string file;
    std::string host = "127.0.0.1";
    int port = 0;
    double rate = 0;
    double seconds = 3;
    bool ceiling = false;
};

[[noreturn]] void usage(char const* why) {
    std::fprintf(stderr,
                 "flowd-flow-replay: %s\nusage: flowd-flow-replay --file RECORDED --port PORT "
                 "--rate DATAGRAMS_PER_S [--host H] [--seconds S] | --file RECORDED --ceiling\n",
                 why);
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    flowd::bench::arg_reader args(argc, argv, usage);
    while (args.next()) {
        if (args.is("--file")) {
            o.file = args.value();
        } else if (args.is("--host")) {
            o.host = args.value();
        } else if (args.is("--port")) {
            o.port = static_cast<int>(args.number());
        } else if (args.is("--rate")) {
            o.rate = args.real();
        } else if (args.is("--seconds")) {
            o.seconds = args.real();
        } else if (args.is("--ceiling")) {
            o.ceiling = true;
        } else {
            args.unknown();
        }
    }
    if (o.file.empty() || (!o.ceiling && (o.port <= 0 || o.rate <= 0))) {
        usage("--file and --port with --rate, or --ceiling, are required");
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    options const o = parse(argc, argv);
    std::ifstream in(o.file, std::ios::binary);
    std::vector<char> const raw((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::vector<std::uint8_t>> datagrams;
    for (std::size_t pos = 0; pos + 2 <= raw.size();) {
        std::size_t const n = static_cast<std::size_t>(static_cast<unsigned char>(raw[pos])) << 8 |
                              static_cast<unsigned char>(raw[pos + 1]);
        if (pos + 2 + n > raw.size()) {
            break;
        }
        datagrams.emplace_back(raw.begin() + static_cast<std::ptrdiff_t>(pos + 2),
                               raw.begin() + static_cast<std::ptrdiff_t>(pos + 2 + n));
        pos += 2 + n;
    }
    if (datagrams.empty()) {
        usage("no datagrams in the file");
    }
    // Records per datagram as a collector sees them when it gets them in order; a second
    // pass counts what a replay that wraps around delivers (templates already known).
    flowd::packet_decoder decoder;
    std::vector<std::size_t> records(datagrams.size());
    std::vector<flowd::decoded_flow> flows;
    auto const exporter = flowd::ip_address::from_v4(0x7f000001U);
    for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t i = 0; i < datagrams.size(); ++i) {
            flows.clear();
            (void)decoder.decode(exporter, datagrams[i], 0, flows);
            records[i] = flows.size();
        }
    }

    int const fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    if (o.ceiling) {
        int const sink = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof local;
        if (::bind(sink, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
            ::getsockname(sink, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
            usage("cannot bind the sink socket");
        }
        to = local;
    } else {
        to.sin_port = htons(static_cast<std::uint16_t>(o.port));
        if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
            usage("--host must be an IPv4 address");
        }
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        usage("cannot connect the UDP socket");
    }

    using clock = std::chrono::steady_clock;
    auto const start = clock::now();
    auto const end = start + std::chrono::duration_cast<clock::duration>(
                                 std::chrono::duration<double>(o.seconds));
    std::uint64_t sent = 0;
    std::uint64_t sent_records = 0;
    std::size_t next = 0;
    // The first pass's counts apply until the file has gone round once.
    bool wrapped = false;
    std::vector<std::size_t> first_records(datagrams.size());
    {
        flowd::packet_decoder fresh;
        for (std::size_t i = 0; i < datagrams.size(); ++i) {
            flows.clear();
            (void)fresh.decode(exporter, datagrams[i], 0, flows);
            first_records[i] = flows.size();
        }
    }
    while (true) {
        auto const now = clock::now();
        if (now >= end) {
            break;
        }
        // Open loop: as many as the schedule says by now, whatever the receiver does.
        auto const due = o.ceiling
                             ? sent + 64
                             : static_cast<std::uint64_t>(
                                   std::chrono::duration<double>(now - start).count() * o.rate);
        if (sent >= due) {
            std::this_thread::yield();
            continue;
        }
        while (sent < due) {
            auto const& d = datagrams[next];
            if (::send(fd, d.data(), d.size(), 0) < 0) {
                break;  // ECONNREFUSED (nothing listening yet): not sent, not counted
            }
            sent_records += wrapped ? records[next] : first_records[next];
            ++sent;
            if (++next == datagrams.size()) {
                next = 0;
                wrapped = true;
            }
        }
    }
    double const secs = std::chrono::duration<double>(clock::now() - start).count();
    std::printf(
        "sent %llu datagrams (%llu flow records) in %.2f s: %.0f datagrams/s, %.0f "
        "records/s\n",
        static_cast<unsigned long long>(sent), static_cast<unsigned long long>(sent_records), secs,
        static_cast<double>(sent) / secs, static_cast<double>(sent_records) / secs);
    std::printf("RESULT datagrams=%llu records=%llu seconds=%.3f\n",
                static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(sent_records), secs);
    ::close(fd);
    return 0;
}
