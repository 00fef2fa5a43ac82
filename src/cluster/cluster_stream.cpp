#include <algorithm>
#include <string>

#include <nats/nats.h>

#include "flowd/cluster/cluster_ingest.hpp"
#include "nats_support.hpp"

namespace flowd {

// The stream's side of cluster_ingest, on the apply thread: finding or creating the stream,
// checking it still holds what this node has not applied, subscribing an ordered consumer
// from the next sequence, and the watchdog that recreates a consumer gone silent.

using namespace cluster_detail;  // NOLINT(google-build-using-namespace): this module's own helpers

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
    jsStreamInfo* si = leader_stream_info();
    if (si == nullptr) {
        return false;
    }
    check_stream_settings(*si);
    if (std::string const why = why_stream_cannot_resume(*si); !why.empty()) {
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
    learn_applied_stamp();
    if (!subscribe_from_next()) {
        return false;
    }
    last_setup_error_.clear();
    note_recovery(consume_outage_since_, metrics_.failover_consume, "consuming the stream");
    last_message_at_ = clock::now();
    next_stall_check_ = last_message_at_ + stall_after;
    return true;
}

jsStreamInfo* cluster_ingest::leader_stream_info() {
    jsOptions quick;
    jsOptions_Init(&quick);
    quick.Wait = subscribe_wait_ms;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsStreamInfo* si = nullptr;
    natsStatus s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), &quick, &jerr);
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
        // Every replica answers reads by sequence: see apply_by_get().
        cfg.AllowDirect = true;
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
        return nullptr;
    }
    if (!leader_answered(si)) {
        note_setup_failure("stream " + options_.stream + " has no leader now (a replica " +
                           "answered with sequences up to " + std::to_string(si->State.LastSeq) +
                           ")");
        jsStreamInfo_Destroy(si);
        return nullptr;
    }
    return si;
}

void cluster_ingest::check_stream_settings(jsStreamInfo const& si) {
    if (si.Config == nullptr) {
        return;
    }
    direct_get_ = si.Config->AllowDirect;
    if (!direct_get_ && !told_no_direct_get_) {
        told_no_direct_get_ = true;
        // Not changed here: a stream update sends the whole configuration, and fields
        // this client does not know would be reset.
        log_->warn(
            "cluster: stream {} was created without allow_direct: while JetStream has no "
            "meta leader (after its server died) this node cannot read the stream by "
            "sequence and applies nothing until a consumer can be created again; `nats "
            "stream edit {} --allow-direct` turns it on",
            options_.stream, options_.stream);
    }
    auto const window_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.duplicate_window).count();
    if (si.Config->Duplicates != window_ns || si.Config->Replicas != options_.replicas) {
        // Not changed behind the operator's back: a smaller window would weaken retries.
        log_->warn(
            "cluster: stream {} has {} replicas and a duplicate window of {} ms; this node is "
            "configured for {} and {} ms (idempotency_window): the stream's settings apply",
            options_.stream, si.Config->Replicas, si.Config->Duplicates / 1'000'000,
            options_.replicas, options_.duplicate_window.count());
    }
}

std::string cluster_ingest::why_stream_cannot_resume(jsStreamInfo const& si) const {
    std::uint64_t const applied = applied_seq();
    if (si.State.LastSeq < applied) {
        return "stream " + options_.stream + " ends at sequence " +
               std::to_string(si.State.LastSeq) + ", before sequence " + std::to_string(applied) +
               " which this node applied";
    }
    if (si.State.Msgs > 0 && si.State.FirstSeq > applied + 1) {
        return "stream " + options_.stream + " starts at sequence " +
               std::to_string(si.State.FirstSeq) + " but this node applied only up to " +
               std::to_string(applied);
    }
    return {};
}

void cluster_ingest::learn_applied_stamp() {
    if (applied_seq() == 0 || applied_stamp_ms() != 0) {
        return;
    }
    // Resumed from a checkpoint: the stamp of its last message, for sealing. A message
    // gone from the stream leaves it unknown (no hour sealed for caching) until the next.
    natsMsg* last = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetMsg(&last, js_, options_.stream.c_str(), applied_seq(), nullptr, &jerr) == NATS_OK) {
        applied_stamp_ms_.store(
            static_cast<std::uint64_t>(std::max<std::int64_t>(natsMsg_GetTime(last), 0)) /
                1'000'000,
            std::memory_order_release);
        natsMsg_Destroy(last);
    }
}

bool cluster_ingest::subscribe_from_next() {
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
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus const s = js_SubscribeSync(&sub_, js_, subject_.c_str(), &jo, &so, &jerr);
    if (s != NATS_OK) {
        note_setup_failure("cannot subscribe to " + subject_ + ": " + status_text(s) +
                           " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")");
        sub_ = nullptr;
        return false;
    }
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

}  // namespace flowd
