#include "flowd/app/flow_collector.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <boost/asio/ip/udp.hpp>

#include "flow_receiver.hpp"
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
