#include "flow_receiver.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <netinet/in.h>
#include <sys/socket.h>

namespace flowd {

namespace net = boost::asio;

namespace {

// Datagrams read per wake-up before the strand lets the timer in.
constexpr int datagrams_per_wake = 64;
// Micro-batches submitted and not yet answered; past this the batch keeps filling.
constexpr std::size_t max_in_flight = 4;
constexpr auto warn_every = std::chrono::seconds(10);

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

}  // namespace flowd
