#include "flowd/cluster/cluster_ingest.hpp"

#include <algorithm>
#include <stdexcept>

#include <nats/nats.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"
#include "flowd/http/flows_handler.hpp"

namespace flowd {

namespace {

using clock = std::chrono::steady_clock;

// How long the apply thread blocks in one wait for the next message: the granularity of
// min_seq timeouts and of the publish-ack sweep.
constexpr std::int64_t poll_ms = 50;

// An ordered consumer whose server died can go silent without an error reaching a
// synchronous subscriber (the library reports missed heartbeats to an error callback only).
// After this long without a message while the stream holds more, the consumer is recreated
// from the next sequence to apply.
constexpr std::chrono::seconds stall_after{2};

// How long creating the consumer may take before the try counts as failed and is retried
// (every 500 ms). Right after the NATS servers come back, JetStream answers consumer
// requests only once its leaders are elected: with the library's 5 s default one timed-out
// try held this node's apply loop for 5 s, past `min_seq_wait`, while a later try would have
// succeeded.
constexpr std::int64_t subscribe_wait_ms = 1'000;

problem cluster_unavailable(std::string detail) {
    return problem{problem_type::cluster_unavailable, std::move(detail), {}, {}};
}

ingest_outcome refused(problem p) {
    return ingest_outcome{std::move(p), 0, std::nullopt};
}

problem key_in_flight() {
    return problem{problem_type::idempotency_key_in_flight,
                   "a request with this Idempotency-Key is still being processed on this node; "
                   "retry once it has been answered",
                   {},
                   {}};
}

problem key_reused() {
    return problem{problem_type::idempotency_key_reused,
                   "this Idempotency-Key was used for a different body within the idempotency "
                   "window; use a new key for a new batch",
                   {},
                   {}};
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

void ack_handler(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<cluster_ingest*>(closure);
    if (pa != nullptr) {
        self->complete_publish(msg, pa->Sequence, pa->Duplicate, {});
    } else {
        std::string why = pae == nullptr ? std::string("no acknowledgement")
                                         : std::string(natsStatus_GetText(pae->Err));
        if (pae != nullptr && pae->ErrText != nullptr) {
            why += std::string(": ") + pae->ErrText;
        }
        self->complete_publish(msg, 0, false, why);
    }
    natsMsg_Destroy(msg);
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
                 .Add({})) {}

cluster_ingest::cluster_ingest(flow_store& store, cluster_metrics& metrics, cluster_options options,
                               std::shared_ptr<spdlog::logger> log)
    : store_(store),
      metrics_(metrics),
      options_(std::move(options)),
      subject_(cluster_subject(options_.stream)),
      log_(std::move(log)) {}

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
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(opts, 250);
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
    jo.Wait = options_.publish_timeout.count();
    check(natsConnection_JetStream(&js_, conn_, &jo), "JetStream context");
    started_ = true;
    if (!options_.data_dir.empty()) {
        checkpoint_thread_ = std::thread([this] { checkpoint_loop(); });
    }
    apply_thread_ = std::thread([this] { apply_loop(); });
}

void cluster_ingest::submit(flow_batch batch, ingest_request info, completion done) {
    if (!connected()) {
        metrics_.publish_failures.Increment();
        return done(ingest_outcome{
            cluster_unavailable("no NATS server of the cluster is reachable from this node; "
                                "nothing of this batch was stored: retry later"),
            0, std::nullopt});
    }
    {
        std::scoped_lock lock{pending_mutex_};
        if (pending_.size() >= options_.max_pending_publishes) {
            return done(refused(
                problem{problem_type::overloaded,
                        std::to_string(pending_.size()) +
                            " batches of this node are waiting for the stream's acknowledgement; "
                            "nothing of this batch was stored: retry later",
                        {},
                        {}}));
        }
    }
    bool owns_claim = false;
    if (info.idempotency && options_.idempotency != nullptr) {
        auto const begun = options_.idempotency->begin(*info.idempotency, info.accepted_unix_ms);
        using kind = idempotency_table::begin_result::kind;
        switch (begun.what) {
            case kind::in_flight:
                return done(refused(key_in_flight()));
            case kind::reused:
                return done(refused(key_reused()));
            case kind::duplicate:
                break;  // published again: the stream answers the first one's sequence
            case kind::fresh:
                owns_claim = true;
                break;
        }
    }
    // The record is exactly the local log's, so a stream message and a log frame carry one
    // format (and checkpoints, later, one shape of position).
    wal::encoded_payload const payload = wal::encode_payload(
        batch, info.idempotency ? &*info.idempotency : nullptr, info.accepted_unix_ms);
    std::string const id =
        message_id(info, options_.node_name, next_id_.fetch_add(1, std::memory_order_relaxed));
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject_.c_str(), nullptr, payload.bytes.data(),
                                  static_cast<int>(payload.bytes.size()));
    if (s == NATS_OK) {
        s = natsMsgHeader_Set(msg, "Flowd-Node", options_.node_name.c_str());
    }
    if (s != NATS_OK) {
        natsMsg_Destroy(msg);
        metrics_.publish_failures.Increment();
        if (owns_claim) {
            options_.idempotency->abort(*info.idempotency);
        }
        return done(ingest_outcome{cluster_unavailable("cannot build the stream message: " +
                                                       std::string(natsStatus_GetText(s))),
                                   0, std::nullopt});
    }
    void const* const key = msg;
    {
        // Registered before publishing: the ack may arrive before js_PublishMsgAsync returns.
        std::scoped_lock lock{pending_mutex_};
        pending_.emplace(key,
                         pending{std::move(done), batch.record_count(),
                                 clock::now() + options_.publish_timeout + std::chrono::seconds(2),
                                 info.idempotency, owns_claim});
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    po.MaxWait = options_.publish_timeout.count();
    s = js_PublishMsgAsync(js_, &msg, &po);
    if (s != NATS_OK) {
        // The library kept no reference: msg is still ours.
        natsMsg_Destroy(msg);
        complete_publish(key, 0, false, std::string("publish: ") + natsStatus_GetText(s));
    }
}

void cluster_ingest::complete_publish(void const* key, std::uint64_t seq, bool duplicate,
                                      std::string error) {
    pending p;
    {
        std::scoped_lock lock{pending_mutex_};
        auto it = pending_.find(key);
        if (it == pending_.end()) {
            return;  // already answered by the sweep
        }
        p = std::move(it->second);
        pending_.erase(it);
    }
    if (!error.empty()) {
        if (p.owns_claim) {
            options_.idempotency->abort(*p.claim);
        }
        metrics_.publish_failures.Increment();
        log_->warn("cluster: publish not acknowledged: {}", error);
        return p.done(ingest_outcome{
            cluster_unavailable("the stream did not acknowledge the batch (" + error +
                                "); it may or may not be stored: retry with the same "
                                "Idempotency-Key to be sure it is counted once"),
            0, std::nullopt});
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
                         return shared->done(refused(cluster_unavailable(
                             "the stream holds a batch under this Idempotency-Key (sequence " +
                             std::to_string(seq) +
                             ") that this node has not applied yet; retry with the same key")));
                     }
                     std::optional<std::uint64_t> const first =
                         options_.idempotency->fingerprint_of(claim, wall_clock_ms());
                     if (first && *first != claim.fingerprint) {
                         return shared->done(refused(key_reused()));
                     }
                     ingest_outcome o;
                     o.accepted = shared->records;
                     o.seq = seq;
                     shared->done(std::move(o));
                 });
}

void cluster_ingest::expire_publishes() {
    auto const now = clock::now();
    std::vector<void const*> late;
    {
        std::scoped_lock lock{pending_mutex_};
        for (auto const& [key, p] : pending_) {
            if (p.deadline <= now) {
                late.push_back(key);
            }
        }
    }
    for (void const* key : late) {
        complete_publish(key, 0, false, "timed out");
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
    // Retried every 500 ms: say it once per distinct reason, not per try.
    if (why != last_setup_error_) {
        log_->warn("cluster: {}; retrying every 500 ms", why);
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

    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = options_.stream.c_str();
    so.Ordered = true;
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
        if (s == NATS_OK && si != nullptr) {
            known = si->State.LastSeq;
        }
        jsStreamInfo_Destroy(si);
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            halt("stream " + options_.stream + " was deleted");
            return;
        }
        if (si != nullptr && known < applied) {
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
    }
}

void cluster_ingest::apply_message(void* raw) {
    auto* msg = static_cast<natsMsg*>(raw);
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        return;  // not a stream message (a heartbeat the library did not swallow)
    }
    std::uint64_t const seq = meta->Sequence.Stream;
    std::uint64_t const left = meta->NumPending;
    std::int64_t const stamp_ns = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
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
    applied_.store(seq, std::memory_order_release);
    metrics_.applied_seq.Set(static_cast<double>(seq));
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

void cluster_ingest::checkpoint() {
    std::uint64_t const seq = applied_seq();
    if (options_.data_dir.empty() || seq == checkpointed_seq_) {
        return;
    }
    {
        std::scoped_lock lock{checkpoint_mutex_};
        if (checkpoint_busy_ || checkpoint_job_) {
            return;  // the previous one is still being written: next period
        }
    }
    // On the apply thread, the store's only writer: the copy is exactly the stream up to seq
    // (about 32 bytes a key); the checkpoint thread writes it while applying goes on.
    checkpoint_job job{seq, store_.export_all(),
                       options_.idempotency == nullptr
                           ? std::vector<idempotency_table::entry>{}
                           : options_.idempotency->completed(wall_clock_ms())};
    {
        std::scoped_lock lock{checkpoint_mutex_};
        checkpoint_job_ = std::move(job);
    }
    checkpoint_wake_.notify_one();
    checkpointed_seq_ = seq;
}

void cluster_ingest::checkpoint_loop() {
    while (true) {
        checkpoint_job job;
        {
            std::unique_lock lock{checkpoint_mutex_};
            checkpoint_wake_.wait(
                lock, [this] { return checkpoint_stop_ || checkpoint_job_.has_value(); });
            if (!checkpoint_job_) {
                return;  // stopping, nothing left to write
            }
            job = std::move(*checkpoint_job_);
            checkpoint_job_.reset();
            checkpoint_busy_ = true;
        }
        write_checkpoint(job.seq, job.keys, job.idempotency);
        std::scoped_lock lock{checkpoint_mutex_};
        checkpoint_busy_ = false;
    }
}

void cluster_ingest::write_checkpoint(std::uint64_t seq,
                                      std::vector<flow_store::exported_key> const& keys,
                                      std::vector<idempotency_table::entry> const& idempotency) {
    auto const started = clock::now();
    try {
        wal::snapshot_info const info =
            wal::write_snapshot(options_.data_dir, seq, keys, store_, idempotency, wall_clock_ms());
        std::size_t const removed = wal::remove_covered_files(options_.data_dir, *log_);
        log_->info(
            "cluster: checkpoint {} covers stream sequence {}: {} keys, {} idempotency keys, {} "
            "bytes, {:.3f} s; {} old files removed",
            wal::snapshot_name(seq), seq, info.keys, idempotency.size(), info.bytes,
            std::chrono::duration<double>(clock::now() - started).count(), removed);
    } catch (std::exception const& e) {
        log_->error("cluster: checkpoint failed (the stream still holds everything): {}", e.what());
    }
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
                next_setup = clock::now() + std::chrono::milliseconds(500);
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
                if (s != NATS_TIMEOUT) {
                    log_->warn("cluster: consumer of {} failed: {}; resubscribing from {}",
                               subject_, status_text(s), applied_seq() + 1);
                    natsSubscription_Destroy(sub_);
                    sub_ = nullptr;
                    next_setup = clock::now() + std::chrono::milliseconds(500);
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
    if (checkpoint_thread_.joinable()) {
        {
            std::scoped_lock lock{checkpoint_mutex_};
            checkpoint_stop_ = true;
        }
        checkpoint_wake_.notify_one();
        checkpoint_thread_.join();
    }
    if (!options_.data_dir.empty() && applied_seq() != checkpointed_seq_) {
        std::uint64_t const seq = applied_seq();
        write_checkpoint(seq, store_.export_all(),
                         options_.idempotency == nullptr
                             ? std::vector<idempotency_table::entry>{}
                             : options_.idempotency->completed(wall_clock_ms()));
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
    {
        std::scoped_lock lock{wait_mutex_};
        stopping_ = true;
    }
    wake_.notify_all();
    if (apply_thread_.joinable()) {
        apply_thread_.join();
    }
    if (js_ != nullptr) {
        // Lets what is in flight be acknowledged (or fail) before the connection goes.
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2'000;
        (void)js_PublishAsyncComplete(js_, &po);
    }
    if (conn_ != nullptr) {
        closing_.store(true, std::memory_order_release);
        natsConnection_Close(conn_);
    }
    std::vector<void const*> left;
    {
        std::scoped_lock lock{pending_mutex_};
        for (auto const& kv : pending_) {
            left.push_back(kv.first);
        }
    }
    for (void const* key : left) {
        complete_publish(key, 0, false, "flowd is stopping");
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
