#include "flowd/cluster/cluster_ingest.hpp"

#include <algorithm>
#include <stdexcept>

#include <nats/nats.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"
#include "flowd/ingest/admission.hpp"

namespace flowd {

namespace {

using clock = std::chrono::steady_clock;

// How long the apply thread blocks in one wait for the next message: the granularity of
// min_seq timeouts and of the publish-ack sweep.
constexpr std::int64_t poll_ms = 50;

// An ordered consumer whose server died can go silent without an error reaching a
// synchronous subscriber. The server sends an idle heartbeat this often when it has nothing
// to deliver, so the library notices a dead consumer after two missed ones (~1 s); and after
// stall_after without a message while the stream holds more, flowd recreates it itself from
// the next sequence to apply. Both stay under min_seq_wait (2 s by default), so a node
// applies an acknowledged batch within it even when its consumer's server was killed.
constexpr std::int64_t heartbeat_ms = 500;
constexpr std::chrono::seconds stall_after{1};

// How soon a consumer that failed (or could not be created) is tried again: an election
// takes about a second, and each try is short (subscribe_wait_ms).
constexpr std::chrono::milliseconds resubscribe_after{100};

// Retries of a publish the stream could not take: the first soon (a reconnect to a live
// server takes milliseconds), then doubling up to the cap (an election takes about a
// second), until the POST's cluster_publish_timeout.
constexpr std::chrono::milliseconds first_retry_after{25};
constexpr std::chrono::milliseconds max_retry_after{400};
constexpr std::chrono::milliseconds last_attempt_before{30};
// One attempt waits at most this long for its ack: a publish sent to a server that died
// after taking it is published again sooner than at the POST's deadline.
constexpr std::chrono::milliseconds attempt_wait{1'500};

// How long creating the consumer may take before the try counts as failed and is retried
// (resubscribe_after later). Right after the NATS servers come back, JetStream answers consumer
// requests only once its leaders are elected: with the library's 5 s default one timed-out
// try held this node's apply loop for 5 s, past `min_seq_wait`, while a later try would have
// succeeded.
constexpr std::int64_t subscribe_wait_ms = 1'000;

problem cluster_unavailable(std::string detail) {
    return problem{problem_type::cluster_unavailable, std::move(detail), {}, {}};
}

std::string status_text(natsStatus s) {
    char const* last = nats_GetLastError(nullptr);
    std::string out = natsStatus_GetText(s);
    if (last != nullptr && *last != '\0') {
        out += " (";
        out += last;
        out += ")";
    }
    return out;
}

void check(natsStatus s, char const* what) {
    if (s != NATS_OK) {
        throw std::runtime_error(std::string("cluster: ") + what + ": " + status_text(s));
    }
}

// A message id the stream deduplicates on: the client's Idempotency-Key (scoped to its
// token, so two tokens never collide), else one unique to this POST on this node.
std::string message_id(ingest_request const& info, std::string const& node, std::uint64_t n) {
    if (info.idempotency) {
        return "k:" + std::to_string(info.idempotency->scope.size()) + ":" +
               info.idempotency->scope + ":" + info.idempotency->key;
    }
    return "g:" + node + ":" + std::to_string(info.accepted_unix_ms) + ":" + std::to_string(n);
}

// Failures the stream may not repeat if the same message is published again: no server
// subscribed to the stream's subject yet (its leader died and none is elected: "no
// responders"), no ack in time, the connection down or reconnecting, or JetStream saying it
// has no leader or quorum now. Anything else (a message too large, a stream gone) is final.
bool retriable(natsStatus s, jsErrCode code) {
    switch (s) {
        case NATS_NO_RESPONDERS:
        case NATS_TIMEOUT:
        case NATS_CONNECTION_CLOSED:
        case NATS_CONNECTION_DISCONNECTED:
        case NATS_NOT_YET_CONNECTED:
        case NATS_NO_SERVER:
        case NATS_STALE_CONNECTION:
        case NATS_IO_ERROR:
            return true;
        default:
            break;
    }
    switch (code) {
        case JSClusterNotAvailErr:
        case JSClusterNotLeaderErr:
        case JSClusterNoPeersErr:
        case JSStreamOfflineErr:
            return true;
        default:
            return false;
    }
}

// Whether a stream info answer speaks for the stream. While the stream has no leader (its
// leader was killed and no other is elected yet) every replica answers with its own copy,
// and a replica's copy may end a few sequences before what the old leader had already
// delivered to consumers (it applies entries only once it learns they were committed):
// a shorter stream then is lag, not a deleted one, and must not halt the node.
bool leader_answered(jsStreamInfo const* si) {
    return si->Cluster == nullptr ||
           (si->Cluster->Leader != nullptr && *si->Cluster->Leader != '\0');
}

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

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
        .count();
}

void on_disconnected(natsConnection* /*nc*/, void* closure) {
    static_cast<cluster_ingest*>(closure)->on_connection_change(false);
}

void on_reconnected(natsConnection* /*nc*/, void* closure) {
    static_cast<cluster_ingest*>(closure)->on_connection_change(true);
}

}  // namespace

std::string cluster_subject(std::string const& stream) {
    return "flowd." + stream + ".batches";
}

cluster_metrics::cluster_metrics(prometheus::Registry& registry)
    : flows_applied_stream(prometheus::BuildCounter()
                               .Name("flowd_flows_applied_total")
                               .Help("Records applied to the store, by source")
                               .Register(registry)
                               .Add({{"source", "stream"}})),
      records_applied(prometheus::BuildCounter()
                          .Name("flowd_cluster_stream_records_applied_total")
                          .Help("Stream messages (batches) this node applied to its store")
                          .Register(registry)
                          .Add({})),
      publish_failures(prometheus::BuildCounter()
                           .Name("flowd_cluster_publish_failures_total")
                           .Help("POSTed batches answered 503 cluster-unavailable")
                           .Register(registry)
                           .Add({})),
      apply_lag_records(prometheus::BuildGauge()
                            .Name("flowd_cluster_apply_lag_records")
                            .Help("Stream messages not yet applied by this node")
                            .Register(registry)
                            .Add({})),
      apply_lag_seconds(prometheus::BuildGauge()
                            .Name("flowd_cluster_apply_lag_seconds")
                            .Help("Age of the last applied message while messages are pending; 0 "
                                  "when caught up")
                            .Register(registry)
                            .Add({})),
      applied_seq(prometheus::BuildGauge()
                      .Name("flowd_cluster_applied_seq")
                      .Help("The last stream sequence this node applied")
                      .Register(registry)
                      .Add({})),
      connected(prometheus::BuildGauge()
                    .Name("flowd_cluster_connected")
                    .Help("1 while the NATS connection is up, else 0")
                    .Register(registry)
                    .Add({})),
      skipped_outside_retention(
          prometheus::BuildCounter()
              .Name("flowd_cluster_apply_skipped_keys_total")
              .Help("Keys of stream records not applied because their hour is outside the "
                    "retention window")
              .Register(registry)
              .Add({})),
      saturated_at_apply(prometheus::BuildCounter()
                             .Name("flowd_cluster_apply_saturated_total")
                             .Help("Sums that reached 2^63-1 when a stream record was applied "
                                   "and were held there")
                             .Register(registry)
                             .Add({})),
      halted(prometheus::BuildGauge()
                 .Name("flowd_cluster_apply_halted")
                 .Help("1 when this node stopped applying because the stream no longer matches "
                       "what it applied (see its log), else 0")
                 .Register(registry)
                 .Add({})),
      publish_retries(prometheus::BuildCounter()
                          .Name("flowd_cluster_publish_retries_total")
                          .Help("Publishes of a POSTed batch tried again (same message id) after "
                                "the stream could not take it: no leader, no connection, no ack")
                          .Register(registry)
                          .Add({})),
      consumer_restarts(prometheus::BuildCounter()
                            .Name("flowd_cluster_consumer_restarts_total")
                            .Help("Times this node recreated its stream consumer after an error "
                                  "or a stall")
                            .Register(registry)
                            .Add({})),
      failover(prometheus::BuildHistogram()
                   .Name("flowd_cluster_failover_seconds")
                   .Help("Outages of the stream as this node saw them, by path: from the first "
                         "failed publish to the first acknowledged one (publish), or from a "
                         "consumer error or stall to the first message applied after it "
                         "(consume)")
                   .Register(registry)),
      failover_publish(failover.Add(
          {{"path", "publish"}},
          prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300})),
      failover_consume(failover.Add(
          {{"path", "consume"}}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2,
                                                                         5, 10, 30, 60, 300})) {}

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
    std::vector<char const*> servers;
    servers.reserve(options_.urls.size());
    for (auto const& u : options_.urls) {
        servers.push_back(u.c_str());
    }
    natsStatus s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
    std::string const name = "flowd-" + options_.node_name;
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
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_reconnected, this);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, this);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, this);
    }
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

void cluster_ingest::submit(flow_batch batch, ingest_request info, completion done) {
    bool const up = connected();
    {
        std::scoped_lock lock{pending_mutex_};
        if (pending_.size() >= options_.max_pending_publishes) {
            return done(ingest_outcome::refused(
                problem{problem_type::overloaded,
                        std::to_string(pending_.size()) +
                            " batches of this node are waiting for the stream's acknowledgement; "
                            "nothing of this batch was stored: retry later",
                        {},
                        {}}));
        }
        if (!up && retrying_ >= options_.max_retrying_publishes) {
            metrics_.publish_failures.Increment();
            return done(ingest_outcome::refused(cluster_unavailable(
                "no NATS server of the cluster is reachable from this node and " +
                std::to_string(retrying_) +
                " batches already wait for one; nothing of this batch was stored: retry later")));
        }
    }
    bool owns_claim = false;
    if (info.idempotency && options_.idempotency != nullptr) {
        auto const begun = options_.idempotency->begin(*info.idempotency, info.accepted_unix_ms);
        using kind = idempotency_table::begin_result::kind;
        switch (begun.what) {
            case kind::in_flight:
                return done(ingest_outcome::refused(key_in_flight_problem()));
            case kind::reused:
                return done(ingest_outcome::refused(key_reused_problem()));
            case kind::duplicate:
                break;  // published again: the stream answers the first one's sequence
            case kind::fresh:
                owns_claim = true;
                break;
        }
    }
    // The record is exactly the local log's, so a stream message and a log frame carry one
    // format (and checkpoints, later, one shape of position).
    wal::encoded_payload payload = wal::encode_payload(
        batch, info.idempotency ? &*info.idempotency : nullptr, info.accepted_unix_ms);
    pending p{
        std::move(done),
        batch.record_count(),
        clock::now() + options_.publish_timeout,
        std::string(payload.bytes.begin(), payload.bytes.end()),
        message_id(info, options_.node_name, next_id_.fetch_add(1, std::memory_order_relaxed)),
        0,
        false,
        {},
        info.idempotency,
        owns_claim};
    std::uint64_t token = 0;
    {
        std::scoped_lock lock{pending_mutex_};
        token = ++next_token_;
        pending_.emplace(token, std::move(p));
    }
    publish_attempt(token);
}

void cluster_ingest::publish_attempt(std::uint64_t token) {
    natsMsg* msg = nullptr;
    std::string msg_id;
    std::chrono::milliseconds wait{0};
    {
        std::scoped_lock lock{pending_mutex_};
        auto it = pending_.find(token);
        if (it == pending_.end()) {
            return;  // answered meanwhile (the sweep, stop())
        }
        pending& p = it->second;
        wait = std::chrono::duration_cast<std::chrono::milliseconds>(p.deadline - clock::now());
        if (wait.count() > 0 && connected()) {
            natsStatus s = natsMsg_Create(&msg, subject_.c_str(), nullptr, p.payload.data(),
                                          static_cast<int>(p.payload.size()));
            if (s == NATS_OK) {
                s = natsMsgHeader_Set(msg, "Flowd-Node", options_.node_name.c_str());
            }
            if (s != NATS_OK) {
                natsMsg_Destroy(msg);
                msg = nullptr;
                p.last_error =
                    "cannot build the stream message: " + std::string(natsStatus_GetText(s));
                wait = std::chrono::milliseconds(0);  // not a condition a retry changes
            } else {
                // Registered before publishing: the ack may arrive before the call returns.
                in_flight_.emplace(msg, token);
                ++p.attempts;
                msg_id = p.msg_id;
            }
        }
    }
    if (msg == nullptr) {
        if (wait.count() > 0) {
            // Not connected: the library reconnects; try again once it may have.
            return on_publish_result(nullptr, token, false,
                                     "no NATS server of the cluster is reachable from this node",
                                     true);
        }
        return complete_publish(token, 0, false, {});
    }
    void const* const key = msg;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id.c_str();
    po.MaxWait = std::min(wait, attempt_wait).count();
    natsStatus const s = js_PublishMsgAsync(js_, &msg, &po);
    if (s != NATS_OK) {
        // The library kept no reference: msg is still ours. Its in-flight entry goes first,
        // so its address cannot be taken by another attempt's message meanwhile.
        on_publish_result(key, 0, false, std::string("publish: ") + status_text(s),
                          retriable(s, static_cast<jsErrCode>(0)));
        natsMsg_Destroy(msg);
    }
}

void cluster_ingest::on_publish_result(void const* msg, std::uint64_t seq, bool duplicate,
                                       std::string error, bool retry) {
    std::uint64_t token = 0;
    std::chrono::milliseconds backoff{0};
    {
        std::scoped_lock lock{pending_mutex_};
        if (msg != nullptr) {
            auto at = in_flight_.find(msg);
            if (at == in_flight_.end()) {
                return;  // its POST was answered meanwhile (the sweep, stop())
            }
            token = at->second;
            in_flight_.erase(at);
        } else {
            token = seq;  // publish_attempt(): not published, seq carries the token
            seq = 0;
        }
        auto it = pending_.find(token);
        if (it == pending_.end()) {
            return;
        }
        pending& p = it->second;
        if (!error.empty()) {
            p.last_error = error;
            // The last attempt goes out shortly before the deadline rather than not at all,
            // so a POST is refused only once its whole cluster_publish_timeout passed.
            auto const now = clock::now();
            unsigned const shift = p.attempts == 0 ? 0U : std::min(p.attempts - 1, 4U);
            auto const due =
                std::min(now + std::min(first_retry_after * (1U << shift), max_retry_after),
                         p.deadline - last_attempt_before);
            backoff = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
            bool const over = retrying_ >= options_.max_retrying_publishes && !p.retrying;
            if (!retry || refusing_retries_.load(std::memory_order_acquire) ||
                backoff.count() <= 0 || over) {
                backoff = std::chrono::milliseconds(0);
                if (over) {
                    p.last_error += "; " + std::to_string(retrying_) +
                                    " batches of this node already wait for the stream";
                }
            } else if (!p.retrying) {
                p.retrying = true;
                ++retrying_;
            }
        }
    }
    if (error.empty()) {
        note_recovery(publish_outage_since_, metrics_.failover_publish, "publishing");
        return complete_publish(token, seq, duplicate, {});
    }
    note_outage(publish_outage_since_);
    if (backoff.count() == 0) {
        return complete_publish(token, 0, false, {});
    }
    metrics_.publish_retries.Increment();
    log_->debug("cluster: publish not acknowledged ({}); trying again in {} ms", error,
                backoff.count());
    {
        std::scoped_lock lock{retry_mutex_};
        retry_due_.emplace(clock::now() + backoff, token);
    }
    retry_wake_.notify_one();
}

void cluster_ingest::note_outage(std::atomic<std::int64_t>& since) {
    std::int64_t none = 0;
    std::int64_t const now = steady_ns();
    if (since.compare_exchange_strong(none, now, std::memory_order_acq_rel)) {
        if (&since == &publish_outage_since_) {
            log_->warn(
                "cluster: the stream does not take publishes now (no leader, no connection or "
                "no ack); POSTs wait up to cluster_publish_timeout ({} ms) and are published "
                "again with their message id",
                options_.publish_timeout.count());
        }
    }
}

void cluster_ingest::note_recovery(std::atomic<std::int64_t>& since,
                                   prometheus::Histogram& histogram, char const* what) {
    if (since.load(std::memory_order_relaxed) == 0) {
        return;
    }
    std::int64_t const began = since.exchange(0, std::memory_order_acq_rel);
    if (began == 0) {
        return;
    }
    double const seconds = static_cast<double>(steady_ns() - began) / 1e9;
    histogram.Observe(seconds);
    log_->warn("cluster: {} again after an outage of {:.3f} s", what, seconds);
}

void cluster_ingest::retry_loop() {
    std::unique_lock lock{retry_mutex_};
    while (!retry_stop_) {
        if (retry_due_.empty()) {
            retry_wake_.wait(lock);
            continue;
        }
        auto const first = retry_due_.begin()->first;
        if (clock::now() < first) {
            retry_wake_.wait_until(lock, first);
            continue;
        }
        std::vector<std::uint64_t> due;
        auto const now = clock::now();
        while (!retry_due_.empty() && retry_due_.begin()->first <= now) {
            due.push_back(retry_due_.begin()->second);
            retry_due_.erase(retry_due_.begin());
        }
        lock.unlock();
        for (std::uint64_t token : due) {
            publish_attempt(token);
        }
        lock.lock();
    }
}

void cluster_ingest::complete_publish(std::uint64_t token, std::uint64_t seq, bool duplicate,
                                      std::string error) {
    pending p;
    {
        std::scoped_lock lock{pending_mutex_};
        auto it = pending_.find(token);
        if (it == pending_.end()) {
            return;  // already answered by the sweep
        }
        p = std::move(it->second);
        pending_.erase(it);
        if (p.retrying) {
            --retrying_;
        }
    }
    if (seq == 0 && error.empty()) {
        error = p.last_error.empty() ? std::string("no acknowledgement") : p.last_error;
    }
    if (!error.empty()) {
        if (p.owns_claim) {
            options_.idempotency->abort(*p.claim);
        }
        metrics_.publish_failures.Increment();
        log_->warn(
            "cluster: POST answered 503 cluster-unavailable after {} publish attempts in "
            "{} ms: {}",
            p.attempts,
            std::chrono::duration_cast<std::chrono::milliseconds>(
                clock::now() - (p.deadline - options_.publish_timeout))
                .count(),
            error);
        return p.done(ingest_outcome::refused(
            cluster_unavailable("the stream did not acknowledge the batch within "
                                "cluster_publish_timeout (" +
                                error +
                                "); it may or may not be stored: retry with the same "
                                "Idempotency-Key to be sure it is counted once")));
    }
    if (duplicate) {
        log_->debug("cluster: duplicate message id, answering stream sequence {}", seq);
        if (p.claim && options_.idempotency != nullptr) {
            idempotency_claim claim = *p.claim;  // before p is moved: arguments are unordered
            return finish_duplicate(std::move(claim), seq, std::move(p));
        }
    } else if (p.owns_claim) {
        options_.idempotency->complete(*p.claim, p.records, wall_clock_ms());
    }
    std::uint64_t prev = highest_acked_.load(std::memory_order_relaxed);
    while (seq > prev && !highest_acked_.compare_exchange_weak(prev, seq)) {
    }
    ingest_outcome o;
    o.accepted = p.records;
    o.seq = seq;
    p.done(std::move(o));
}

void cluster_ingest::finish_duplicate(idempotency_claim claim, std::uint64_t seq, pending p) {
    // The stream holds a message under this key already, maybe from another node and with
    // another body: which body it was is known once this node applied that sequence.
    if (p.owns_claim) {
        options_.idempotency->abort(claim);
    }
    auto shared = std::make_shared<pending>(std::move(p));
    wait_applied(seq, options_.publish_timeout,
                 [this, claim = std::move(claim), seq, shared](bool applied) {
                     if (!applied) {
                         return shared->done(ingest_outcome::refused(cluster_unavailable(
                             "the stream holds a batch under this Idempotency-Key (sequence " +
                             std::to_string(seq) +
                             ") that this node has not applied yet; retry with the same key")));
                     }
                     std::optional<std::uint64_t> const first =
                         options_.idempotency->fingerprint_of(claim, wall_clock_ms());
                     if (first && *first != claim.fingerprint) {
                         return shared->done(ingest_outcome::refused(key_reused_problem()));
                     }
                     ingest_outcome o;
                     o.accepted = shared->records;
                     o.seq = seq;
                     shared->done(std::move(o));
                 });
}

void cluster_ingest::expire_publishes() {
    // The library times each attempt out itself (MaxWait); this catches an ack the library
    // never reports, a little after the POST's deadline.
    auto const now = clock::now();
    std::vector<std::uint64_t> late;
    {
        std::scoped_lock lock{pending_mutex_};
        for (auto const& [token, p] : pending_) {
            if (p.deadline + std::chrono::seconds(2) <= now) {
                late.push_back(token);
            }
        }
    }
    for (std::uint64_t token : late) {
        complete_publish(token, 0, false, "timed out");
    }
}

void cluster_ingest::wait_applied(std::uint64_t seq, std::chrono::milliseconds wait,
                                  wait_done done) {
    if (applied_seq() >= seq) {
        return done(true);
    }
    {
        std::scoped_lock lock{wait_mutex_};
        if (!stopping_) {
            waiters_.push_back(waiter{seq, clock::now() + wait, std::move(done)});
            return;
        }
    }
    done(false);
}

void cluster_ingest::release_waiters(bool stopping) {
    std::vector<waiter> ready;
    std::vector<waiter> late;
    std::uint64_t const applied = applied_seq();
    auto const now = clock::now();
    {
        std::scoped_lock lock{wait_mutex_};
        if (waiters_.empty()) {
            return;
        }
        std::vector<waiter> keep;
        for (waiter& w : waiters_) {
            if (w.seq <= applied) {
                ready.push_back(std::move(w));
            } else if (stopping || w.deadline <= now) {
                late.push_back(std::move(w));
            } else {
                keep.push_back(std::move(w));
            }
        }
        waiters_.swap(keep);
    }
    for (waiter& w : ready) {
        w.done(true);
    }
    for (waiter& w : late) {
        w.done(false);
    }
}

void cluster_ingest::note_setup_failure(std::string why) {
    if (closing_.load(std::memory_order_acquire)) {
        return;  // stop() closed the connection under the request: not a failure
    }
    // Retried every resubscribe_after: say it once per distinct reason, not per try.
    if (why != last_setup_error_) {
        log_->warn("cluster: {}; retrying every {} ms", why, resubscribe_after.count());
        last_setup_error_ = std::move(why);
    }
}

bool cluster_ingest::set_up_stream_and_consumer() {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsStreamInfo* si = nullptr;
    natsStatus s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        char const* subjects[] = {subject_.c_str()};
        cfg.Name = options_.stream.c_str();
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = options_.replicas;
        cfg.Duplicates =
            std::chrono::duration_cast<std::chrono::nanoseconds>(options_.duplicate_window).count();
        if (options_.max_bytes != 0) {
            cfg.MaxBytes = static_cast<std::int64_t>(options_.max_bytes);
        }
        cfg.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.max_age).count();
        jerr = static_cast<jsErrCode>(0);
        s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
        if (s == NATS_OK) {
            log_->info(
                "cluster: created stream {} (subject {}, {} replicas, duplicate window {} ms, "
                "max bytes {}, max age {} h; 0: none)",
                options_.stream, subject_, options_.replicas, options_.duplicate_window.count(),
                options_.max_bytes, options_.max_age.count());
        } else if (jerr == JSStreamNameExistErr) {
            // Another node created it first.
            s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr);
        }
    }
    if (s != NATS_OK) {
        note_setup_failure("stream " + options_.stream + " not available yet: " + status_text(s) +
                           " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")");
        return false;
    }
    if (!leader_answered(si)) {
        note_setup_failure("stream " + options_.stream + " has no leader now (a replica " +
                           "answered with sequences up to " + std::to_string(si->State.LastSeq) +
                           ")");
        jsStreamInfo_Destroy(si);
        return false;
    }
    auto const window_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.duplicate_window).count();
    if (si->Config != nullptr &&
        (si->Config->Duplicates != window_ns || si->Config->Replicas != options_.replicas)) {
        // Not changed behind the operator's back: a smaller window would weaken retries.
        log_->warn(
            "cluster: stream {} has {} replicas and a duplicate window of {} ms; this node is "
            "configured for {} and {} ms (idempotency_window): the stream's settings apply",
            options_.stream, si->Config->Replicas, si->Config->Duplicates / 1'000'000,
            options_.replicas, options_.duplicate_window.count());
    }
    std::uint64_t const applied = applied_seq();
    if (si->State.LastSeq < applied) {
        std::string const why = "stream " + options_.stream + " ends at sequence " +
                                std::to_string(si->State.LastSeq) + ", before sequence " +
                                std::to_string(applied) + " which this node applied";
        jsStreamInfo_Destroy(si);
        halt(why);
        return false;
    }
    if (si->State.Msgs > 0 && si->State.FirstSeq > applied + 1) {
        std::string const why = "stream " + options_.stream + " starts at sequence " +
                                std::to_string(si->State.FirstSeq) + " but this node applied " +
                                "only up to " + std::to_string(applied);
        jsStreamInfo_Destroy(si);
        halt(why);
        return false;
    }
    if (!have_target_) {
        catch_up_target_ = si->State.LastSeq;
        have_target_ = true;
        log_->info("cluster: stream {} holds sequences {}..{}; applying from {}", options_.stream,
                   si->State.FirstSeq, si->State.LastSeq, applied_seq() + 1);
    }
    jsStreamInfo_Destroy(si);

    if (applied_seq() != 0 && applied_stamp_ms() == 0) {
        // Resumed from a checkpoint: the stamp of its last message, for sealing. A message
        // gone from the stream leaves it unknown (no hour sealed for caching) until the next.
        natsMsg* last = nullptr;
        jerr = static_cast<jsErrCode>(0);
        if (js_GetMsg(&last, js_, options_.stream.c_str(), applied_seq(), nullptr, &jerr) ==
            NATS_OK) {
            applied_stamp_ms_.store(
                static_cast<std::uint64_t>(std::max<std::int64_t>(natsMsg_GetTime(last), 0)) /
                    1'000'000,
                std::memory_order_release);
            natsMsg_Destroy(last);
        }
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = options_.stream.c_str();
    so.Ordered = true;
    // Idle heartbeats (and flow control, which ordered consumers need with them): see
    // heartbeat_ms.
    so.Config.Heartbeat = heartbeat_ms * 1'000'000;
    so.Config.FlowControl = true;
    if (applied_seq() == 0) {
        so.Config.DeliverPolicy = js_DeliverAll;
    } else {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = applied_seq() + 1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = subscribe_wait_ms;
    jerr = static_cast<jsErrCode>(0);
    s = js_SubscribeSync(&sub_, js_, subject_.c_str(), &jo, &so, &jerr);
    if (s != NATS_OK) {
        note_setup_failure("cannot subscribe to " + subject_ + ": " + status_text(s) +
                           " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")");
        sub_ = nullptr;
        return false;
    }
    last_setup_error_.clear();
    note_recovery(consume_outage_since_, metrics_.failover_consume, "consuming the stream");
    last_message_at_ = clock::now();
    next_stall_check_ = last_message_at_ + stall_after;
    return true;
}

void cluster_ingest::check_for_stall() {
    auto const now = clock::now();
    if (sub_ == nullptr || halted_.load(std::memory_order_acquire) ||
        now - last_message_at_ < stall_after || now < next_stall_check_) {
        return;
    }
    next_stall_check_ = now + stall_after;
    std::uint64_t const applied = applied_seq();
    std::uint64_t known = highest_acked_.load(std::memory_order_relaxed);
    if (known <= applied) {
        // Sequences published through other nodes: ask the stream (one small request per
        // stall period while idle).
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 1'000;
        jsStreamInfo* si = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsStatus const s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), &jo, &jerr);
        bool const authoritative = s == NATS_OK && si != nullptr && leader_answered(si);
        if (authoritative) {
            known = si->State.LastSeq;
        } else if (s == NATS_OK && si != nullptr) {
            note_setup_failure("stream " + options_.stream + " has no leader now (a replica " +
                               "answered with sequences up to " +
                               std::to_string(si->State.LastSeq) + ")");
        }
        jsStreamInfo_Destroy(si);
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            halt("stream " + options_.stream + " was deleted");
            return;
        }
        if (authoritative && known < applied) {
            halt("stream " + options_.stream + " now ends at sequence " + std::to_string(known) +
                 ", before sequence " + std::to_string(applied) +
                 " which this node applied: it was deleted and recreated");
            return;
        }
    }
    if (known > applied) {
        log_->warn(
            "cluster: consumer of {} delivered nothing for {} s while the stream holds sequence "
            "{}; resubscribing from {}",
            subject_, stall_after.count(), known, applied + 1);
        natsSubscription_Destroy(sub_);
        sub_ = nullptr;
        metrics_.consumer_restarts.Increment();
        note_outage(consume_outage_since_);
    }
}

void cluster_ingest::apply_message(void* raw) {
    auto* msg = static_cast<natsMsg*>(raw);
    jsMsgMetaData* meta = nullptr;
    std::uint64_t seq = 0;
    std::uint64_t left = 0;
    std::int64_t stamp_ns = 0;
    bool know_left = true;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        seq = meta->Sequence.Stream;
        left = meta->NumPending;
        stamp_ns = meta->Timestamp;
        jsMsgMetaData_Destroy(meta);
    } else if (natsMsg_GetSequence(msg) > 0) {
        // Fetched by sequence (apply_by_get()): no consumer metadata, so no pending count.
        seq = natsMsg_GetSequence(msg);
        stamp_ns = natsMsg_GetTime(msg);
        know_left = false;
    } else {
        return;  // not a stream message (a heartbeat the library did not swallow)
    }
    std::uint64_t const applied = applied_seq();
    if (seq <= applied) {
        return;  // redelivered after a consumer reset
    }
    if (seq != applied + 1) {
        // flowd never deletes stream messages: limits or a purge did, before this node
        // applied them.
        halt("stream " + options_.stream + " delivered sequence " + std::to_string(seq) +
             " after " + std::to_string(applied) + ": sequences " + std::to_string(applied + 1) +
             ".." + std::to_string(seq - 1) + " are gone from it");
        return;
    }
    std::string_view const data(natsMsg_GetData(msg),
                                static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    if (auto record = wal::decode_payload(data)) {
        apply_record(*record);
    } else {
        // Every node skips the same message, so they still agree with one another.
        log_->error("cluster: stream message {} is not a flowd batch record; skipped", seq);
    }
    metrics_.records_applied.Increment();
    applied_stamp_ms_.store(
        static_cast<std::uint64_t>(std::max<std::int64_t>(stamp_ns, 0)) / 1'000'000,
        std::memory_order_release);
    applied_.store(seq, std::memory_order_release);
    metrics_.applied_seq.Set(static_cast<double>(seq));
    if (!know_left) {
        return;
    }
    metrics_.apply_lag_records.Set(static_cast<double>(left));
    if (left == 0) {
        metrics_.apply_lag_seconds.Set(0.0);
    } else {
        double const age =
            static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count() -
                                stamp_ns) /
            1e9;
        metrics_.apply_lag_seconds.Set(std::max(0.0, age));
    }
}

void cluster_ingest::apply_by_get() {
    // A consumer is created through JetStream's meta leader: when the server killed was
    // that leader, no consumer can be created until another is elected (seconds, past
    // min_seq_wait). Reading a message by sequence is answered by the stream's own leader,
    // so while the consumer is being recreated the node keeps applying this way. A missing
    // sequence (the end of the stream, or one deleted) ends it; the consumer, once back,
    // judges gaps as always.
    if (!connected() || halted_.load(std::memory_order_acquire)) {
        return;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 500;
    std::size_t applied = 0;
    for (; applied < 4096; ++applied) {
        natsMsg* msg = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        if (js_GetMsg(&msg, js_, options_.stream.c_str(), applied_seq() + 1, &jo, &jerr) !=
            NATS_OK) {
            break;
        }
        apply_message(msg);
        natsMsg_Destroy(msg);
    }
    if (applied != 0) {
        log_->info(
            "cluster: applied {} stream messages by sequence, up to {}, while the "
            "consumer is recreated",
            applied, applied_seq());
        release_waiters(false);
    }
}

void cluster_ingest::apply_record(wal::log_record const& record) {
    std::uint64_t const now_ms = wall_clock_ms();
    flow_batch const* batch = &record.batch;
    flow_batch kept;
    if (options_.retention_hours != 0) {
        std::uint32_t const first = retention_window_at(now_ms, options_.retention_hours).first;
        auto const& entries = record.batch.entries();
        std::size_t const outside = static_cast<std::size_t>(std::count_if(
            entries.begin(), entries.end(), [&](auto& e) { return e.record.hour < first; }));
        if (outside != 0) {
            metrics_.skipped_outside_retention.Increment(static_cast<double>(outside));
            kept.reserve(entries.size() - outside);
            for (batch_entry const& e : entries) {
                if (e.record.hour >= first) {
                    (void)kept.add(e.record.src_app, e.record.dest_app, e.record.vpc_id,
                                   e.record.hour, e.record.counters, e.first_record);
                }
            }
            kept.set_record_count(record.batch.record_count());
            batch = &kept;
        }
    }
    std::uint64_t const saturated_before = store_.saturated_adds();
    store_.replay(*batch, true);  // live streams see what the cluster applies
    if (std::uint64_t const saturated = store_.saturated_adds() - saturated_before;
        saturated != 0) {
        metrics_.saturated_at_apply.Increment(static_cast<double>(saturated));
        log_->error(
            "cluster: {} sums reached 2^63-1 when applying a stream record and are held "
            "there",
            saturated);
    }
    metrics_.flows_applied_stream.Increment(static_cast<double>(record.batch.record_count()));
    if (record.idempotency && options_.idempotency != nullptr) {
        options_.idempotency->restore(
            idempotency_table::entry{*record.idempotency, record.batch.record_count(),
                                     record.accepted_unix_ms},
            now_ms);
    }
}

void cluster_ingest::halt(std::string why) {
    {
        // The reason first, then the flag: /readyz reads the reason.
        std::scoped_lock lock{halt_mutex_};
        if (!halted_because_.empty()) {
            return;
        }
        halted_because_ = why;
    }
    halted_.store(true, std::memory_order_release);
    metrics_.halted.Set(1.0);
    log_->critical(
        "cluster: stopped applying: {}. This node's totals would silently differ from its "
        "peers', so it is not ready (/readyz 503) from now on; GET still serves what it "
        "applied. Restart it with a data directory whose checkpoint covers the missing "
        "sequences, or recreate every node's data from a stream that holds its whole history",
        why);
}

std::string cluster_ingest::halted_because() const {
    std::scoped_lock lock{halt_mutex_};
    return halted_because_;
}

wal::checkpoint_job cluster_ingest::checkpoint_job_at(std::uint64_t seq) const {
    // On the apply thread, the store's only writer: the copy is exactly the stream up to seq
    // (about 32 bytes a key).
    return wal::checkpoint_job{seq, store_.export_all(),
                               options_.idempotency == nullptr
                                   ? std::vector<idempotency_table::entry>{}
                                   : options_.idempotency->completed(wall_clock_ms())};
}

void cluster_ingest::checkpoint() {
    std::uint64_t const seq = applied_seq();
    if (options_.data_dir.empty() || seq == checkpointed_seq_ || checkpoints_.busy()) {
        return;  // nothing new, or the previous one is still being written: next period
    }
    checkpoints_.offer(checkpoint_job_at(seq));
    checkpointed_seq_ = seq;
}

void cluster_ingest::apply_loop() {
    auto next_setup = clock::now();
    auto next_checkpoint = clock::now() + options_.checkpoint_interval;
    while (true) {
        {
            std::unique_lock lock{wait_mutex_};
            if (stopping_) {
                break;
            }
            if (sub_ == nullptr && clock::now() < next_setup) {
                wake_.wait_until(
                    lock, std::min(next_setup, clock::now() + std::chrono::milliseconds(poll_ms)));
                if (stopping_) {
                    break;
                }
            }
        }
        if (halted_.load(std::memory_order_acquire)) {
            if (sub_ != nullptr) {
                natsSubscription_Destroy(sub_);
                sub_ = nullptr;
            }
            next_setup = clock::time_point::max();  // applies nothing more; serves GET only
        }
        if (sub_ == nullptr && clock::now() >= next_setup) {
            if (!connected() || !set_up_stream_and_consumer()) {
                next_setup = clock::now() + resubscribe_after;
                if (consume_outage_since_.load(std::memory_order_relaxed) != 0) {
                    apply_by_get();
                }
            }
        }
        if (sub_ != nullptr) {
            // Drain what is there without waking the waiters per message.
            for (int i = 0; i < 4096; ++i) {
                natsMsg* msg = nullptr;
                natsStatus const s = natsSubscription_NextMsg(&msg, sub_, i == 0 ? poll_ms : 0);
                if (s == NATS_OK) {
                    last_message_at_ = clock::now();
                    apply_message(msg);
                    natsMsg_Destroy(msg);
                    continue;
                }
                if (s != NATS_TIMEOUT && closing_.load(std::memory_order_acquire)) {
                    break;  // stop() closed the connection: not a consumer failure
                }
                if (s != NATS_TIMEOUT) {
                    // Missed heartbeats, a closed connection, a consumer deleted with its
                    // server: recreated from the next sequence to apply.
                    log_->warn("cluster: consumer of {} failed: {}; resubscribing from {}",
                               subject_, status_text(s), applied_seq() + 1);
                    natsSubscription_Destroy(sub_);
                    sub_ = nullptr;
                    metrics_.consumer_restarts.Increment();
                    note_outage(consume_outage_since_);
                    next_setup = clock::now() + resubscribe_after;
                }
                break;
            }
            check_for_stall();
            if (sub_ != nullptr && applied_seq() >= catch_up_target_ &&
                !caught_up_.exchange(true, std::memory_order_acq_rel)) {
                log_->info("cluster: caught up with stream {} at sequence {}", options_.stream,
                           applied_seq());
            }
        }
        release_waiters(false);
        expire_publishes();
        if (clock::now() >= next_checkpoint) {
            checkpoint();
            next_checkpoint = clock::now() + options_.checkpoint_interval;
        }
    }
    // A clean stop: the next start applies from here rather than from the stream's start.
    // The checkpoint thread finishes what it holds first; the last copy is written here.
    checkpoints_.stop();
    if (!options_.data_dir.empty() && applied_seq() != checkpointed_seq_) {
        std::uint64_t const seq = applied_seq();
        checkpoints_.write_now(checkpoint_job_at(seq));
        checkpointed_seq_ = seq;
    }
    if (sub_ != nullptr) {
        natsSubscription_Destroy(sub_);
        sub_ = nullptr;
    }
    release_waiters(true);
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
