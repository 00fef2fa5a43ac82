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

void cluster_ingest::apply_message(void* raw) {
    auto* msg = static_cast<natsMsg*>(raw);
    jsMsgMetaData* meta = nullptr;
    std::uint64_t seq = 0;
    std::uint64_t left = 0;
    std::int64_t stamp_ns = 0;
    bool know_left = true;
    if (natsMsg_GetSequence(msg) > 0) {
        // Fetched by sequence (apply_by_get()): no consumer metadata, so no pending count.
        // Asked first: asking a fetched message for consumer metadata fails and leaves its
        // error as the thread's last one, which later warnings would quote.
        seq = natsMsg_GetSequence(msg);
        stamp_ns = natsMsg_GetTime(msg);
        know_left = false;
    } else if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        seq = meta->Sequence.Stream;
        left = meta->NumPending;
        stamp_ns = meta->Timestamp;
        jsMsgMetaData_Destroy(meta);
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
    // min_seq_wait, more on a loaded host). Meanwhile the node keeps applying by reading
    // each next sequence. A direct get is answered by any replica holding it (replicas
    // store only committed messages); the JetStream API's get (a stream created without
    // allow_direct) is refused by every server while the meta group has no leader. A
    // missing sequence (the end of the stream, a replica behind, one deleted) ends the
    // round; the consumer, once back, judges gaps as always.
    if (!connected() || halted_.load(std::memory_order_acquire)) {
        return;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 500;
    std::size_t applied = 0;
    for (; applied < 4096; ++applied) {
        natsMsg* msg = nullptr;
        natsStatus s = NATS_OK;
        if (direct_get_) {
            jsDirectGetMsgOptions by;
            jsDirectGetMsgOptions_Init(&by);
            by.Sequence = applied_seq() + 1;
            s = js_DirectGetMsg(&msg, js_, options_.stream.c_str(), &jo, &by);
        } else {
            jsErrCode jerr = static_cast<jsErrCode>(0);
            s = js_GetMsg(&msg, js_, options_.stream.c_str(), applied_seq() + 1, &jo, &jerr);
        }
        if (s != NATS_OK) {
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

bool cluster_ingest::apply_from_consumer() {
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
            log_->warn("cluster: consumer of {} failed: {}; resubscribing from {}", subject_,
                       status_text(s), applied_seq() + 1);
            natsSubscription_Destroy(sub_);
            sub_ = nullptr;
            metrics_.consumer_restarts.Increment();
            note_outage(consume_outage_since_);
            return false;
        }
        break;
    }
    return true;
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
        // While the consumer is being recreated, every pass reads what it missed: a try to
        // recreate it can block for its whole timeout (subscribe_wait_ms) and fail, so
        // reading only after a failed try left batches waiting for it.
        if (sub_ == nullptr && consume_outage_since_.load(std::memory_order_relaxed) != 0) {
            apply_by_get();
        }
        if (sub_ == nullptr && clock::now() >= next_setup) {
            if (!connected() || !set_up_stream_and_consumer()) {
                next_setup = clock::now() + resubscribe_after;
            }
        }
        if (sub_ != nullptr) {
            if (!apply_from_consumer()) {
                next_setup = clock::now() + resubscribe_after;
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

}  // namespace flowd
