#include <algorithm>
#include <stdexcept>

#include <nats/nats.h>

#include "flowd/cluster/cluster_ingest.hpp"
#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"
#include "flowd/ingest/admission.hpp"
#include "nats_support.hpp"

namespace flowd {

using namespace cluster_detail;  // NOLINT(google-build-using-namespace): this module's own helpers

namespace {

// A message id the stream deduplicates on: the client's Idempotency-Key (scoped to its
// token, so two tokens never collide), else one unique to this POST on this node.
std::string message_id(ingest_request const& info, std::string const& node, std::uint64_t n) {
    if (info.idempotency) {
        return "k:" + std::to_string(info.idempotency->scope.size()) + ":" +
               info.idempotency->scope + ":" + info.idempotency->key;
    }
    return "g:" + node + ":" + std::to_string(info.accepted_unix_ms) + ":" + std::to_string(n);
}

}  // namespace

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
    // The record is a local log's payload, so a stream message and a log frame share one
    // decoder. Of kind 1: a node of the release before name tables skips (cluster_apply)
    // what it cannot decode, so while such nodes may share the stream, only kind 1 is safe.
    wal::encoded_payload payload =
        wal::encode_payload(batch, info.idempotency ? &*info.idempotency : nullptr,
                            info.accepted_unix_ms, wal::payload_kind::inline_names);
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

}  // namespace flowd
