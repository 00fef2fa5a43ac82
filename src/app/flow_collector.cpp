#include "flowd/app/flow_collector.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <netinet/in.h>
#include <sys/socket.h>

#include "flowd/http/flows_handler.hpp"
#include "flowd/http/responses.hpp"

namespace flowd {

namespace net = boost::asio;

namespace {

constexpr std::array<char const*, 4> version_labels{"5", "9", "10", "other"};
constexpr std::array<datagram_result, 5> results{
    datagram_result::decoded, datagram_result::malformed, datagram_result::unknown_version,
    datagram_result::no_template, datagram_result::not_allowed};
constexpr std::array<char const*, 5> result_labels{"decoded", "malformed", "unknown_version",
                                                   "no_template", "not_allowed"};
// Datagrams read per wake-up before the strand lets the timer in.
constexpr int datagrams_per_wake = 64;
// Micro-batches submitted and not yet answered; past this the batch keeps filling.
constexpr std::size_t max_in_flight = 4;
constexpr auto warn_every = std::chrono::seconds(10);

unsigned version_index(unsigned version) noexcept {
    switch (version) {
        case 5:
            return 0;
        case 9:
            return 1;
        case 10:
            return 2;
        default:
            return 3;
    }
}

std::string utc_text(std::uint64_t unix_ms) {
    auto const secs = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::size_t const n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string s(buf, n);
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03uZ", static_cast<unsigned>(unix_ms % 1000));
    return s + ms;
}

std::string endpoint_text(net::ip::udp::endpoint const& ep) {
    std::string const host = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

ip_address address_of(sockaddr_storage const& ss) {
    if (ss.ss_family == AF_INET) {
        sockaddr_in sin{};
        std::memcpy(&sin, &ss, sizeof sin);
        return ip_address::from_v4(ntohl(sin.sin_addr.s_addr));
    }
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &ss, sizeof sin6);
    return ip_address::from_v6(sin6.sin6_addr.s6_addr);
}

}  // namespace

flow_metrics::flow_metrics(prometheus::Registry& registry)
    : dropped_unavailable(prometheus::BuildCounter()
                              .Name("flowd_flow_records_dropped_total")
                              .Help("Flow records decoded but not applied, by reason")
                              .Register(registry)
                              .Add({{"reason", "unavailable"}})),
      socket_drops(prometheus::BuildCounter()
                       .Name("flowd_flow_socket_drops_total")
                       .Help("Datagrams the kernel dropped because the flow socket's receive "
                             "buffer was full (SO_RXQ_OVFL); raise flow_rcvbuf_bytes")
                       .Register(registry)
                       .Add({})),
      templates_refused(prometheus::BuildCounter()
                            .Name("flowd_flow_templates_refused_total")
                            .Help("Templates not kept because their exporter had "
                                  "flow_max_templates already")
                            .Register(registry)
                            .Add({})),
      apps_reload_failures(prometheus::BuildCounter()
                               .Name("flowd_flow_apps_reload_failures_total")
                               .Help("Reloads of apps_file (SIGHUP) that failed; the previous "
                                     "mapping stays")
                               .Register(registry)
                               .Add({})),
      exporters(prometheus::BuildGauge()
                    .Name("flowd_flow_exporters")
                    .Help("Exporters (address, observation domain) tracked")
                    .Register(registry)
                    .Add({})),
      templates(prometheus::BuildGauge()
                    .Name("flowd_flow_templates")
                    .Help("Templates held, all exporters together")
                    .Register(registry)
                    .Add({})) {
    auto& packets_family = prometheus::BuildCounter()
                               .Name("flowd_flow_packets_total")
                               .Help("Flow datagrams received, by version and result")
                               .Register(registry);
    for (std::size_t v = 0; v < version_labels.size(); ++v) {
        for (std::size_t r = 0; r < results.size(); ++r) {
            packets_.at(v * results.size() + r) = &packets_family.Add(
                {{"version", version_labels.at(v)}, {"result", result_labels.at(r)}});
        }
    }
    auto& records_family = prometheus::BuildCounter()
                               .Name("flowd_flow_records_total")
                               .Help("Flow records decoded, by version")
                               .Register(registry);
    auto& gaps_family = prometheus::BuildCounter()
                            .Name("flowd_flow_sequence_gaps_total")
                            .Help(
                                "Sizes of sequence gaps summed (records for v5 and IPFIX, "
                                "packets for v9)")
                            .Register(registry);
    for (std::size_t v = 0; v < 3; ++v) {
        records_.at(v) = &records_family.Add({{"version", version_labels.at(v)}});
        gaps_.at(v) = &gaps_family.Add({{"version", version_labels.at(v)}});
    }
    auto& dropped_family = prometheus::BuildCounter()
                               .Name("flowd_flow_records_dropped_total")
                               .Help("Flow records decoded but not applied, by reason")
                               .Register(registry);
    for (std::size_t i = 0; i < drop_reason_count; ++i) {
        dropped_.at(i) = &dropped_family.Add(
            {{"reason", std::string(drop_reason_label(static_cast<drop_reason>(i)))}});
    }
    dropped_.at(drop_reason_count) = &dropped_unavailable;
}

prometheus::Counter& flow_metrics::packets(unsigned version, datagram_result r) {
    auto const ri =
        static_cast<std::size_t>(std::find(results.begin(), results.end(), r) - results.begin());
    return *packets_.at(version_index(version) * results.size() + ri);
}

prometheus::Counter& flow_metrics::records(unsigned version) {
    return *records_.at(std::min(version_index(version), 2U));
}

prometheus::Counter& flow_metrics::gaps(unsigned version) {
    return *gaps_.at(std::min(version_index(version), 2U));
}

prometheus::Counter& flow_metrics::dropped(drop_reason r) {
    return *dropped_.at(static_cast<std::size_t>(r));
}

// One UDP socket of the flow listener and what decodes its datagrams: with SO_REUSEPORT
// the kernel keeps each exporter (its address and port) on one socket, so each socket has
// its own templates and micro-batches. The socket and timer run on one strand; the
// decoder, the batcher and the apps table are guarded by mutex_, which /flow-exporters
// and SIGHUP also take. The class is thread-safe. It must outlive the io_context's run.
class flow_receiver {
public:
    flow_receiver(boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                  flow_collector_options const& options, boost::asio::ip::udp::endpoint listen,
                  bool reuse_port, std::shared_ptr<apps_table const> apps,
                  std::shared_ptr<spdlog::logger> log);
    ~flow_receiver() = default;
    flow_receiver(flow_receiver const&) = delete;
    flow_receiver& operator=(flow_receiver const&) = delete;

    // Starts receiving and the batch timer.
    void start();
    // Stops receiving and submits what is batched (shutdown).
    void stop();
    void set_apps(std::shared_ptr<apps_table const> apps);

    [[nodiscard]] boost::asio::ip::udp::endpoint local_endpoint() const;
    [[nodiscard]] int receive_buffer_bytes() const;
    [[nodiscard]] std::vector<exporter_info> exporters() const;

private:
    void do_wait();
    void on_readable(boost::system::error_code ec);
    void handle_datagram(ip_address const& from, std::uint8_t const* data, std::size_t size,
                         std::uint64_t now_ms);
    void add_flows(std::vector<decoded_flow> const& flows, std::string const& vpc,
                   std::uint64_t now_ms);
    void schedule_flush();
    void flush();
    void submit(std::shared_ptr<flow_batcher> batch);
    // Per-datagram trouble, said at most once every 10 s with a count of what was not said.
    // Never called with mutex_ held.
    void warn_rate_limited(std::string const& what);

    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    boost::asio::ip::udp::socket socket_;
    boost::asio::steady_timer timer_;
    ingest& sink_;
    flow_metrics metrics_;
    flow_collector_options options_;
    boost::asio::ip::udp::endpoint listen_;
    std::shared_ptr<spdlog::logger> log_;
    std::vector<std::uint8_t> buffer_;  // touched only on the strand
    std::uint32_t socket_drops_seen_ = 0;

    mutable std::mutex mutex_;
    packet_decoder decoder_;                  // guarded by mutex_
    std::shared_ptr<apps_table const> apps_;  // guarded by mutex_
    std::shared_ptr<flow_batcher> batch_;     // guarded by mutex_
    std::vector<decoded_flow> flows_;         // guarded by mutex_ (scratch)
    std::mutex warn_mutex_;
    std::chrono::steady_clock::time_point last_warn_{};  // guarded by warn_mutex_
    std::size_t suppressed_warnings_ = 0;                // guarded by warn_mutex_
    std::size_t in_flight_ = 0;                          // guarded by mutex_
    bool stopped_ = false;                               // guarded by mutex_
    // What this socket's decoder last added to the shared gauges.
    std::size_t exporters_counted_ = 0;  // guarded by mutex_
    std::size_t templates_counted_ = 0;  // guarded by mutex_
};

flow_receiver::flow_receiver(net::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                             flow_collector_options const& options, net::ip::udp::endpoint listen,
                             bool reuse_port, std::shared_ptr<apps_table const> apps,
                             std::shared_ptr<spdlog::logger> log)
    : strand_(net::make_strand(ioc)),
      socket_(strand_),
      timer_(strand_),
      sink_(sink),
      metrics_(registry),
      options_(options),
      listen_(listen),
      log_(std::move(log)),
      buffer_(65'536),
      decoder_(options_.limits),
      apps_(std::move(apps)),
      batch_(std::make_shared<flow_batcher>()) {
    socket_.open(listen_.protocol());
    if (reuse_port) {
        // Several sockets on one port, one per I/O thread: the kernel spreads exporters
        // over them by address and port, each exporter always to the same socket.
        int const one = 1;
        if (::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
            0) {
            throw boost::system::system_error(
                boost::system::error_code(errno, boost::system::system_category()), "SO_REUSEPORT");
        }
    }
    if (listen_.address().is_v6()) {
        // [::] receives IPv4 exporters too, as IPv4-mapped addresses (normalised later).
        socket_.set_option(net::ip::v6_only(false));
    }
    if (options_.rcvbuf_bytes != 0) {
        socket_.set_option(
            net::socket_base::receive_buffer_size(static_cast<int>(options_.rcvbuf_bytes)));
    }
    int const on = 1;
    // Counts the datagrams the kernel drops on a full buffer, read with each datagram.
    (void)::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);
    socket_.bind(listen_);
    socket_.non_blocking(true);
}

net::ip::udp::endpoint flow_receiver::local_endpoint() const {
    return socket_.local_endpoint();
}

int flow_receiver::receive_buffer_bytes() const {
    net::socket_base::receive_buffer_size effective;
    socket_.get_option(effective);
    return effective.value();
}

void flow_receiver::start() {
    net::post(strand_, [this] {
        do_wait();
        schedule_flush();
    });
}

void flow_receiver::stop() {
    {
        std::scoped_lock lock{mutex_};
        stopped_ = true;
    }
    net::post(strand_, [this] {
        boost::system::error_code ec;
        socket_.close(ec);
        timer_.cancel();
    });
    flush();
}

void flow_receiver::do_wait() {
    socket_.async_wait(net::socket_base::wait_read,
                       [this](boost::system::error_code ec) { on_readable(ec); });
}

void flow_receiver::on_readable(boost::system::error_code ec) {
    if (ec) {
        return;  // closed at shutdown
    }
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint32_t))];
    bool full = false;
    for (int i = 0; i < datagrams_per_wake; ++i) {
        sockaddr_storage from{};
        iovec iov{buffer_.data(), buffer_.size()};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t const n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT);
        if (n < 0) {
            break;  // EAGAIN: drained; anything else: try again on the next wake-up
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                std::uint32_t total = 0;
                std::memcpy(&total, CMSG_DATA(c), sizeof total);
                // A running count kept by the kernel, modulo 2^32.
                metrics_.socket_drops.Increment(static_cast<double>(total - socket_drops_seen_));
                socket_drops_seen_ = total;
            }
        }
        handle_datagram(address_of(from), buffer_.data(), static_cast<std::size_t>(n),
                        wall_clock_ms());
        std::scoped_lock lock{mutex_};
        full = full || batch_->records() >= options_.batch_records;
    }
    if (full) {
        flush();
    }
    do_wait();
}

void flow_receiver::handle_datagram(ip_address const& from, std::uint8_t const* data,
                                    std::size_t size, std::uint64_t now_ms) {
    unsigned const claimed = size >= 2 ? unsigned{data[0]} << 8 | data[1] : 0;
    if (!options_.allowed_exporters.empty() &&
        std::none_of(options_.allowed_exporters.begin(), options_.allowed_exporters.end(),
                     [&](address_range const& r) { return r.contains(from); })) {
        metrics_.packets(claimed, datagram_result::not_allowed).Increment();
        warn_rate_limited("a datagram from " + from.to_string() +
                          " was refused: not in flow_allowed_exporters");
        return;
    }
    decode_outcome o;
    bool new_exporter = false;
    {
        std::scoped_lock lock{mutex_};
        std::size_t const exporters_before = decoder_.exporter_count();
        flows_.clear();
        o = decoder_.decode(from, std::span(data, size), now_ms, flows_);
        new_exporter = decoder_.exporter_count() > exporters_before;
        metrics_.packets(o.result == datagram_result::unknown_version ? 0 : o.version, o.result)
            .Increment();
        // The gauges are shared by every socket: each adds what its own counts moved by.
        metrics_.exporters.Increment(static_cast<double>(decoder_.exporter_count()) -
                                     static_cast<double>(exporters_counted_));
        metrics_.templates.Increment(static_cast<double>(decoder_.template_count()) -
                                     static_cast<double>(templates_counted_));
        exporters_counted_ = decoder_.exporter_count();
        templates_counted_ = decoder_.template_count();
        if (o.templates_refused != 0) {
            metrics_.templates_refused.Increment(static_cast<double>(o.templates_refused));
        }
        if (o.gap != 0) {
            metrics_.gaps(o.version).Increment(static_cast<double>(o.gap));
        }
        if (!flows_.empty()) {
            metrics_.records(o.version).Increment(static_cast<double>(flows_.size()));
            add_flows(flows_, apps_->vpc_of(from, o.domain), now_ms);
        }
    }
    // Said after the lock: what an operator needs to find a misconfigured exporter.
    std::string const who = from.to_string() + " (domain " + std::to_string(o.domain) + ")";
    if (new_exporter) {
        log_->info("new flow exporter {}, version {}", who, o.version);
    }
    switch (o.result) {
        case datagram_result::malformed:
            warn_rate_limited("a malformed datagram of " + std::to_string(size) + " bytes from " +
                              from.to_string() + " was dropped (version " +
                              std::to_string(claimed) + ")");
            break;
        case datagram_result::unknown_version:
            warn_rate_limited("a datagram from " + from.to_string() + " of version " +
                              std::to_string(claimed) +
                              " was dropped: flowd takes NetFlow v5, v9 and IPFIX (10)");
            break;
        case datagram_result::not_allowed:
            warn_rate_limited("exporter " + who + " is not tracked: flow_max_exporters (" +
                              std::to_string(options_.limits.max_exporters) + ") reached");
            break;
        case datagram_result::decoded:
        case datagram_result::no_template:
            break;
    }
    if (o.templates_refused != 0) {
        warn_rate_limited("exporter " + who + ": " + std::to_string(o.templates_refused) +
                          " templates refused, flow_max_templates (" +
                          std::to_string(options_.limits.max_templates) + ") reached");
    }
}

void flow_receiver::add_flows(std::vector<decoded_flow> const& flows, std::string const& vpc,
                              std::uint64_t now_ms) {
    apps_table const& apps = *apps_;
    retention_window const window = options_.retention_hours == 0
                                        ? retention_window{0, max_hour}
                                        : retention_window_at(now_ms, options_.retention_hours);
    // As POST's admission, but per record: one late record is dropped, not the batch.
    std::uint32_t const sealed = sealed_before(now_ms, options_.seal_after);
    std::array<std::size_t, drop_reason_count> drops{};
    std::string src_text;
    std::string dst_text;
    for (decoded_flow const& f : flows) {
        std::string const* src = apps.app_of(f.src);
        std::string const* dst = apps.app_of(f.dst);
        if (src == nullptr || dst == nullptr) {
            switch (apps.unmatched()) {
                case apps_table::unmatched_policy::drop:
                    ++drops[static_cast<std::size_t>(drop_reason::unmatched)];
                    continue;
                case apps_table::unmatched_policy::name:
                    src = src != nullptr ? src : &apps.unmatched_name();
                    dst = dst != nullptr ? dst : &apps.unmatched_name();
                    break;
                case apps_table::unmatched_policy::address:
                    if (src == nullptr) {
                        src_text = f.src.to_string();
                        src = &src_text;
                    }
                    if (dst == nullptr) {
                        dst_text = f.dst.to_string();
                        dst = &dst_text;
                    }
                    break;
            }
        }
        auto const hour = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(f.end_unix_ms / 3'600'000, max_hour));
        if (hour < window.first || hour > window.last) {
            ++drops[static_cast<std::size_t>(drop_reason::retention)];
            continue;
        }
        if (hour < sealed) {
            ++drops[static_cast<std::size_t>(drop_reason::sealed)];
            continue;
        }
        if (!batch_->add(*src, *dst, vpc, hour, flow_counters{f.octets, f.reverse_octets})) {
            ++drops[static_cast<std::size_t>(drop_reason::overflow)];
        }
    }
    for (std::size_t i = 0; i < drops.size(); ++i) {
        if (drops.at(i) != 0) {
            metrics_.dropped(static_cast<drop_reason>(i))
                .Increment(static_cast<double>(drops.at(i)));
        }
    }
}

void flow_receiver::schedule_flush() {
    timer_.expires_after(options_.batch_interval);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) {
            return;
        }
        flush();
        schedule_flush();
    });
}

void flow_receiver::flush() {
    std::shared_ptr<flow_batcher> taken;
    std::size_t dropped = 0;
    {
        std::scoped_lock lock{mutex_};
        if (batch_->empty()) {
            return;
        }
        if (in_flight_ < max_in_flight) {
            taken = std::exchange(batch_, std::make_shared<flow_batcher>());
            ++in_flight_;
        } else if (batch_->records() >= 8 * options_.batch_records) {
            // The ingest is behind (a slow disk, a stream without quorum): keep filling, within
            // a bound, rather than queue batches without end.
            dropped = batch_->records();
            batch_->clear();
        }
    }
    if (dropped != 0) {
        metrics_.dropped_unavailable.Increment(static_cast<double>(dropped));
        warn_rate_limited("the ingest is behind: a micro-batch of " + std::to_string(dropped) +
                          " flow records was dropped");
    }
    if (taken) {
        submit(std::move(taken));
    }
}

void flow_receiver::submit(std::shared_ptr<flow_batcher> batch) {
    flow_batch b = batch->build();
    ingest_request info{"flow", std::nullopt, wall_clock_ms(), ingest_source::flow, {}};
    sink_.submit(std::move(b), std::move(info), [this, batch](ingest_outcome o) {
        if (o.error && o.error->type == problem_type::counter_overflow && o.error->record) {
            // One key's stored sum would pass 2^63-1: drop that key's records, apply the rest.
            metrics_.dropped(drop_reason::overflow)
                .Increment(static_cast<double>(batch->remove_key(*o.error->record)));
            if (!batch->empty()) {
                submit(batch);
                return;
            }
        } else if (o.error) {
            bool const full = o.error->type == problem_type::store_full;
            (full ? metrics_.dropped(drop_reason::store_full) : metrics_.dropped_unavailable)
                .Increment(static_cast<double>(batch->records()));
            warn_rate_limited("a micro-batch of " + std::to_string(batch->records()) +
                              " flow records was dropped: " + o.error->detail);
        }
        std::scoped_lock lock{mutex_};
        --in_flight_;
    });
}

void flow_receiver::warn_rate_limited(std::string const& what) {
    std::size_t suppressed = 0;
    {
        std::scoped_lock lock{warn_mutex_};
        auto const now = std::chrono::steady_clock::now();
        if (last_warn_ != std::chrono::steady_clock::time_point{} &&
            now - last_warn_ < warn_every) {
            ++suppressed_warnings_;
            return;
        }
        last_warn_ = now;
        suppressed = std::exchange(suppressed_warnings_, 0);
    }
    log_->warn("{} ({} more warnings of the flow listener in the last {} s not shown)", what,
               suppressed, std::chrono::duration_cast<std::chrono::seconds>(warn_every).count());
}

void flow_receiver::set_apps(std::shared_ptr<apps_table const> apps) {
    std::scoped_lock lock{mutex_};
    apps_ = std::move(apps);
}

std::vector<exporter_info> flow_receiver::exporters() const {
    std::scoped_lock lock{mutex_};
    return decoder_.exporters();
}

flow_collector::flow_collector(net::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                               flow_collector_options options, std::shared_ptr<spdlog::logger> log,
                               std::size_t sockets)
    : options_(std::move(options)),
      log_(std::move(log)),
      metrics_(registry),
      apps_(std::make_shared<apps_table const>(
          options_.apps_file.empty() ? apps_table{} : apps_table::load(options_.apps_file))) {
    sockets = std::max<std::size_t>(sockets, 1);
    net::ip::udp::endpoint listen = options_.listen;
    for (std::size_t i = 0; i < sockets; ++i) {
        receivers_.push_back(std::make_unique<flow_receiver>(ioc, sink, registry, options_, listen,
                                                             sockets > 1, apps_, log_));
        // Port 0 picked a port: the other sockets join that one.
        listen = receivers_.front()->local_endpoint();
    }
}

flow_collector::~flow_collector() = default;

net::ip::udp::endpoint flow_collector::local_endpoint() const {
    return receivers_.front()->local_endpoint();
}

void flow_collector::start() {
    std::shared_ptr<apps_table const> apps;
    {
        std::scoped_lock lock{apps_mutex_};
        apps = apps_;
    }
    log_->info(
        "flow listening on {} (NetFlow v5/v9, IPFIX; {} socket{}; receive buffer {} bytes{}; apps "
        "file {}: {} applications, {} prefixes)",
        endpoint_text(local_endpoint()), receivers_.size(),
        receivers_.size() == 1 ? "" : "s with SO_REUSEPORT, one per I/O thread",
        receivers_.front()->receive_buffer_bytes(),
        options_.rcvbuf_bytes == 0 ? ", the kernel default"
                                   : ", flow_rcvbuf_bytes " + std::to_string(options_.rcvbuf_bytes),
        options_.apps_file.empty() ? "(none)" : options_.apps_file, apps->app_count(),
        apps->prefix_count());
    for (auto& r : receivers_) {
        r->start();
    }
}

void flow_collector::stop() {
    for (auto& r : receivers_) {
        r->stop();
    }
}

void flow_collector::reload_apps() {
    if (options_.apps_file.empty()) {
        log_->info("SIGHUP: no apps_file configured, nothing to reload");
        return;
    }
    try {
        auto next = std::make_shared<apps_table const>(apps_table::load(options_.apps_file));
        for (auto& r : receivers_) {
            r->set_apps(next);
        }
        log_->info("SIGHUP: reloaded {}: {} applications, {} prefixes", options_.apps_file,
                   next->app_count(), next->prefix_count());
        std::scoped_lock lock{apps_mutex_};
        apps_ = std::move(next);
    } catch (apps_file_error const& e) {
        metrics_.apps_reload_failures.Increment();
        log_->error("SIGHUP: apps file not reloaded, the previous mapping stays in use: {}",
                    e.what());
    }
}

std::string flow_collector::exporters_json() const {
    std::vector<exporter_info> list;
    for (auto const& r : receivers_) {
        std::vector<exporter_info> const some = r->exporters();
        list.insert(list.end(), some.begin(), some.end());
    }
    std::sort(list.begin(), list.end(), [](exporter_info const& a, exporter_info const& b) {
        return a.address != b.address ? a.address < b.address : a.domain < b.domain;
    });
    // An exporter that sends from several ports can reach several sockets: one entry each.
    std::vector<exporter_info> merged;
    for (exporter_info const& e : list) {
        if (!merged.empty() && merged.back().address == e.address &&
            merged.back().domain == e.domain) {
            exporter_info& m = merged.back();
            m.version = e.last_seen_unix_ms > m.last_seen_unix_ms ? e.version : m.version;
            m.last_seen_unix_ms = std::max(m.last_seen_unix_ms, e.last_seen_unix_ms);
            m.packets += e.packets;
            m.records += e.records;
            m.templates = std::max(m.templates, e.templates);
            m.sequence_gaps += e.sequence_gaps;
        } else {
            merged.push_back(e);
        }
    }
    list = std::move(merged);
    std::string out = "[";
    for (exporter_info const& e : list) {
        if (out.size() > 1) {
            out += ',';
        }
        out += "{\"address\":\"" + e.address.to_string() +
               "\",\"domain\":" + std::to_string(e.domain) +
               ",\"version\":" + std::to_string(e.version) + ",\"last_seen\":\"" +
               utc_text(e.last_seen_unix_ms) + "\",\"packets\":" + std::to_string(e.packets) +
               ",\"records\":" + std::to_string(e.records) +
               ",\"templates\":" + std::to_string(e.templates) +
               ",\"sequence_gaps\":" + std::to_string(e.sequence_gaps) + "}";
    }
    out += "]";
    return out;
}

std::unique_ptr<flow_collector> make_flow_collector(config const& cfg, net::io_context& ioc,
                                                    ingest& sink, prometheus::Registry& registry,
                                                    std::shared_ptr<spdlog::logger> log) {
    if (cfg.flow_listen.empty()) {
        // The series exist at 0 all the same (SPEC Metrics), so dashboards and rules that
        // name them work on every flowd; the registry keeps them after this object goes.
        (void)flow_metrics{registry};
        return nullptr;
    }
    host_port const hp = parse_host_port("flow_listen", cfg.flow_listen);
    boost::system::error_code ec;
    net::ip::address address = net::ip::make_address(hp.host, ec);
    if (ec) {
        net::io_context resolve_ioc;
        net::ip::udp::resolver resolver{resolve_ioc};
        auto const results = resolver.resolve(hp.host, std::to_string(hp.port), ec);
        if (ec || results.empty()) {
            throw config_error("flow_listen: cannot resolve host '" + hp.host + "'");
        }
        address = results.begin()->endpoint().address();
    }
    flow_collector_options o;
    o.listen = net::ip::udp::endpoint{address, hp.port};
    o.rcvbuf_bytes = cfg.flow_rcvbuf_bytes;
    for (std::string const& item : split_list(cfg.flow_allowed_exporters)) {
        std::string why;
        auto const r = parse_cidr(item, why);
        if (!r) {
            throw config_error("flow_allowed_exporters: " + why);
        }
        o.allowed_exporters.push_back(*r);
    }
    o.limits.max_exporters = cfg.flow_max_exporters;
    o.limits.max_templates = cfg.flow_max_templates;
    o.batch_interval = cfg.flow_batch_interval;
    o.batch_records = cfg.flow_batch_records;
    o.retention_hours = cfg.retention_hours;
    o.seal_after = cfg.seal_after;
    o.apps_file = cfg.apps_file;
    try {
        return std::make_unique<flow_collector>(ioc, sink, registry, std::move(o), std::move(log),
                                                std::max(1U, cfg.threads));
    } catch (apps_file_error const& e) {
        throw config_error(std::string("apps_file: ") + e.what());
    } catch (boost::system::system_error const& e) {
        throw std::runtime_error("cannot listen on " + cfg.flow_listen +
                                 " (flow): " + e.code().message());
    }
}

handler_result flow_exporters_answer(flow_collector const* collector) {
    return response{json_response(200, collector == nullptr ? "[]" : collector->exporters_json())};
}

}  // namespace flowd
