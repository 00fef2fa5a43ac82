#pragma once

// What the parts of cluster_ingest share (src/cluster only): the timing constants of
// publishing and consuming, and small helpers around nats.c's statuses.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <nats/nats.h>

#include "flowd/codec/problem.hpp"

namespace flowd::cluster_detail {

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

inline problem cluster_unavailable(std::string detail) {
    return problem{problem_type::cluster_unavailable, std::move(detail), {}, {}};
}

// The status's text, with the thread's last error when that error is the status's own: the
// last error outlives the call that set it (a direct get's "Not Found" at the end of the
// stream), and quoted after a later timeout it names the wrong cause.
inline std::string status_text(natsStatus s) {
    natsStatus last_status = NATS_OK;
    char const* last = nats_GetLastError(&last_status);
    std::string out = natsStatus_GetText(s);
    if (last != nullptr && *last != '\0' && last_status == s) {
        out += " (";
        out += last;
        out += ")";
    }
    return out;
}

inline void check(natsStatus s, char const* what) {
    if (s != NATS_OK) {
        throw std::runtime_error(std::string("cluster: ") + what + ": " + status_text(s));
    }
}

// Failures the stream may not repeat if the same message is published again: no server
// subscribed to the stream's subject yet (its leader died and none is elected: "no
// responders"), no ack in time, the connection down or reconnecting, or JetStream saying it
// has no leader or quorum now. Anything else (a message too large, a stream gone) is final.
inline bool retriable(natsStatus s, jsErrCode code) {
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
inline bool leader_answered(jsStreamInfo const* si) {
    return si->Cluster == nullptr ||
           (si->Cluster->Leader != nullptr && *si->Cluster->Leader != '\0');
}

inline std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
        .count();
}

}  // namespace flowd::cluster_detail
