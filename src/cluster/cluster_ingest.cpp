#include "flowd/cluster/cluster_ingest.hpp"

#include <algorithm>
#include <stdexcept>

#include <nats/nats.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"
#include "flowd/ingest/admission.hpp"
#include "nats_support.hpp"

namespace flowd {

using namespace cluster_detail;  // NOLINT(google-build-using-namespace): this module's own helpers

namespace {

void ack_handler(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<cluster_ingest*>(closure);
    if (pa != nullptr) {
        self->on_publish_result(msg, pa->Sequence, pa->Duplicate, {}, false);
    } else {
        std::string why = pae == nullptr ? std::string("no acknowledgement")
                                         : std::string(natsStatus_GetText(pae->Err));
        if (pae != nullptr && pae->ErrText != nullptr) {
            why += std::string(": ") + pae->ErrText;
        }
        self->on_publish_result(msg, 0, false, why,
                                pae == nullptr || retriable(pae->Err, pae->ErrCode));
    }
    natsMsg_Destroy(msg);
}

void on_disconnected(natsConnection* /*nc*/, void* closure) {
    static_cast<cluster_ingest*>(closure)->on_connection_change(false);
}

void on_reconnected(natsConnection* /*nc*/, void* closure) {
    static_cast<cluster_ingest*>(closure)->on_connection_change(true);
}

// The connection's servers, name and failover behaviour, its callbacks given `self`.
natsStatus set_connection_options(natsOptions* opts, cluster_options const& options,
                                  cluster_ingest* self) {
    std::vector<char const*> servers;
    servers.reserve(options.urls.size());
    for (auto const& u : options.urls) {
        servers.push_back(u.c_str());
    }
    natsStatus s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
    std::string const name = "flowd-" + options.node_name;
    if (s == NATS_OK) {
        s = natsOptions_SetName(opts, name.c_str());
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(opts, -1);  // forever
    }
    // Failover (README "Cluster mode"): a killed server closes its sockets, so the library
    // sees the loss at once and moves to the next server of the list. Reconnect wait bounds
    // how soon a server already tried is tried again (only when every one failed); jitter
    // off, so that wait stays short. Pings every second, two unanswered ones declare a
    // server that stopped answering without closing (a partition, a frozen host) gone in
    // about 2 s instead of the library's 2 minutes. The server list stays shuffled (no
    // NoRandomize): nodes spread over the servers, so one server's loss moves only its share.
    // Requests in flight fail at a disconnect rather than waiting for their timeout: a
    // consumer creation or stream lookup is tried again on the new server at once.
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(opts, 250);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectJitter(opts, 0, 0);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetPingInterval(opts, 1'000);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxPingsOut(opts, 2);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(opts, 2'000);
    }
    if (s == NATS_OK) {
        // A server down at start is retried like a lost connection (status RECONNECTING).
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_reconnected, self);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, self);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, self);
    }
    return s;
}

}  // namespace

cluster_ingest::cluster_ingest(flow_store& store, cluster_metrics& metrics, cluster_options options,
                               std::shared_ptr<spdlog::logger> log)
    : store_(store),
      metrics_(metrics),
      options_(std::move(options)),
      subject_(cluster_subject(options_.stream)),
      log_(std::move(log)),
      checkpoints_(
          options_.data_dir, store_, log_,
          [this](wal::checkpoint_job const& job, wal::checkpoint_written const& w) {
              log_->info(
                  "cluster: checkpoint {} covers stream sequence {}: {} keys, {} idempotency "
                  "keys, {} bytes, {:.3f} s; {} old files removed",
                  wal::snapshot_name(job.seq), job.seq, w.info.keys, job.idempotency.size(),
                  w.info.bytes, w.seconds, w.files_removed);
          },
          [this](std::string const& what) {
              log_->error("cluster: checkpoint failed (the stream still holds everything): {}",
                          what);
          }) {}

cluster_ingest::~cluster_ingest() {
    stop();
}

bool cluster_ingest::connected() const noexcept {
    return conn_ != nullptr && natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
}

void cluster_ingest::on_connection_change(bool up) {
    metrics_.connected.Set(up ? 1.0 : 0.0);
    if (closing_.load(std::memory_order_acquire)) {
        return;  // stop() closes the connection: not an outage
    }
    if (up) {
        log_->warn("cluster: reconnected to NATS; POST /flows publishes again");
    } else {
        log_->error(
            "cluster: disconnected from NATS; POST /flows answers 503 cluster-unavailable "
            "until a server answers again (GET keeps serving what this node applied)");
    }
}

void cluster_ingest::start() {
    natsOptions* opts = nullptr;
    check(natsOptions_Create(&opts), "options");
    natsStatus s = set_connection_options(opts, options_, this);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&conn_, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            std::string list;
            for (auto const& u : options_.urls) {
                list += (list.empty() ? "" : ",") + u;
            }
            log_->warn("cluster: no NATS server of {} answers yet; retrying in the background",
                       list);
            s = NATS_OK;
        } else if (s == NATS_OK) {
            metrics_.connected.Set(1.0);
        }
    }
    natsOptions_Destroy(opts);
    check(s, "connect");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = ack_handler;
    jo.PublishAsync.AckHandlerClosure = this;
    jo.PublishAsync.MaxPending = 65'536;
    jo.Wait = attempt_wait.count();
    check(natsConnection_JetStream(&js_, conn_, &jo), "JetStream context");
    started_ = true;
    retry_thread_ = std::thread([this] { retry_loop(); });
    if (!options_.data_dir.empty()) {
        checkpoints_.start();
    }
    apply_thread_ = std::thread([this] { apply_loop(); });
}
void cluster_ingest::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    // Failures from now on are answered, not retried; the retry thread ends, and what it
    // held is answered below (shutdown's grace period already passed, or nothing waits).
    refusing_retries_.store(true, std::memory_order_release);
    {
        std::scoped_lock lock{retry_mutex_};
        retry_stop_ = true;
    }
    retry_wake_.notify_all();
    if (retry_thread_.joinable()) {
        retry_thread_.join();
    }
    {
        std::scoped_lock lock{wait_mutex_};
        stopping_ = true;
    }
    wake_.notify_all();
    // Closed before the apply thread is joined: while the stream has no leader that thread
    // may be blocked in a JetStream request (a consumer or a stream lookup, up to 1.5 s),
    // which held the exit that long past the grace period; a closed connection ends it at
    // once. Nothing here waits for publish acks: the I/O threads have stopped, so an ack
    // arriving now could answer no one (after a drain that ended by itself none is pending;
    // after the grace period the waiting POSTs' connections close with the process).
    if (conn_ != nullptr) {
        closing_.store(true, std::memory_order_release);
        natsConnection_Close(conn_);
    }
    if (apply_thread_.joinable()) {
        apply_thread_.join();
    }
    std::vector<std::uint64_t> left;
    {
        std::scoped_lock lock{pending_mutex_};
        for (auto const& kv : pending_) {
            left.push_back(kv.first);
        }
        in_flight_.clear();
    }
    for (std::uint64_t token : left) {
        complete_publish(token, 0, false, "flowd is stopping");
    }
    if (js_ != nullptr) {
        jsCtx_Destroy(js_);
        js_ = nullptr;
    }
    if (conn_ != nullptr) {
        natsConnection_Destroy(conn_);
        conn_ = nullptr;
    }
}

}  // namespace flowd
