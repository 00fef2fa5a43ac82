#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

#include "flowd/query/change_journal.hpp"
#include "flowd/query/plan.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

// ---- Server-Sent Events framing (WHATWG HTML, "Server-sent events") -----------------

// Appends one event: `id:` and `event:` lines when not empty, one `data:` line per line of
// `data` (so a multi-line payload survives), then the blank line that ends the event.
void append_sse_event(std::string& out, std::string_view id, std::string_view event,
                      std::string_view data);
// A comment line (ignored by clients; keeps proxies from closing an idle stream).
void append_sse_comment(std::string& out, std::string_view text);

// ---- what the HTTP session sees of a stream ------------------------------------------

// The body of a live answer, produced as the socket drains: the session asks for the next
// piece once the previous one is written. The class is thread-safe.
class event_source {
public:
    event_source() = default;
    virtual ~event_source() = default;
    event_source(event_source const&) = delete;
    event_source& operator=(event_source const&) = delete;

    // A piece of the answer: strings written one after the other, shared and never changed
    // (an event a thousand streams send is one string all of them hold, not a copy each).
    using piece_type = std::vector<std::shared_ptr<std::string const>>;
    // `deliver` is called exactly once, now or later and from any thread, with the next
    // piece (not empty), or with end = true when the stream is over.
    using deliver_fn = std::function<void(piece_type piece, bool end)>;
    virtual void pull(deliver_fn deliver) = 0;
    // The connection is gone, or the answer was to HEAD: release everything.
    virtual void stop() = 0;
};

// A Beast body holding an event_source. The session writes its head, then pulls the
// source itself (see http_session); the Beast writer below is never used to send it.
struct event_stream_body {
    using value_type = std::shared_ptr<event_source>;

    class writer {
    public:
        using const_buffers_type = boost::asio::const_buffer;
        template <bool IsRequest, class Fields>
        writer(boost::beast::http::header<IsRequest, Fields> const&, value_type const&) {}
        void init(boost::beast::error_code& ec) { ec = {}; }
        boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec) {
            ec = {};
            return boost::none;
        }
    };
};

// ---- the streams of one process ------------------------------------------------------

struct stream_options {
    std::chrono::milliseconds resume{60'000};  // stream_resume_seconds
    std::size_t buffer_bytes = 1U << 20;       // stream_buffer_bytes
    std::size_t max_streams = 1000;
    std::chrono::milliseconds keep_alive{15'000};
    std::size_t rows_per_event = 1000;
    // Rows the change journal holds, each (hour, key) once (about 90 to 170 bytes each,
    // allocated as rows change while a stream is open).
    std::size_t journal_rows = 1U << 18;
};

struct stream_metrics;
class stream_subscription;

// What a stream's id says: the process it came from, one more than the journal sequence
// the client holds everything up to (0: not resumable, during a full send) and when it
// was sent.
struct stream_event_id {
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
    std::uint64_t unix_ms = 0;
};
[[nodiscard]] std::string format_event_id(stream_event_id const& id);
[[nodiscard]] std::optional<stream_event_id> parse_event_id(std::string_view text);

// Whether a Last-Event-ID can be resumed by this process now: same epoch, sent within
// `resume`, and the journal still holds every change of hours [from, to) after it.
enum class resume_decision { fresh, resume, reset };
[[nodiscard]] resume_decision decide_resume(std::string_view last_event_id, std::uint64_t epoch,
                                            std::uint64_t now_ms, std::chrono::milliseconds resume,
                                            change_journal const& journal, std::uint32_t from,
                                            std::uint32_t to);

// Owns the change journal and every open stream: opens them (up to max_streams), and ends
// them all at shutdown. The class is thread-safe. No concurrent call to any API of this
// type causes a data race. It must outlive every stream and the store's batches.
class stream_hub {
public:
    stream_hub(flow_store& store, stream_options options, stream_metrics& metrics,
               query_limits limits);
    ~stream_hub();
    stream_hub(stream_hub const&) = delete;
    stream_hub& operator=(stream_hub const&) = delete;

    // A new stream for `plan` (range and filters), resuming `last_event_id` when it can;
    // its timers run on `executor`. nullptr when max_streams are open or shutdown began.
    // `too_many_rows` is set (and nullptr returned) when the range holds more stored rows
    // than max_query_scan_rows.
    [[nodiscard]] std::shared_ptr<event_source> open(query_plan const& plan,
                                                     std::chrono::milliseconds interval,
                                                     std::string_view last_event_id,
                                                     boost::asio::any_io_executor executor,
                                                     bool& too_many_rows);
    // Ends every stream (their clients see the body end) and refuses new ones.
    void shutdown();

    [[nodiscard]] std::size_t open_count() const;
    [[nodiscard]] stream_options const& options() const noexcept { return options_; }
    [[nodiscard]] query_limits const& limits() const noexcept { return limits_; }

private:
    friend class stream_subscription;
    void closed(stream_subscription const* s);

    // The `rows` events of one tick (an interval boundary, every stream of that interval
    // ticks at once) of streams with the same query and interval, each serialised once
    // per cursor and appended to every such stream: all of them read the journal up to the
    // `upto` the first one read, so from their next tick on they share one cursor.
    struct shared_tick {
        std::mutex mutex;
        std::chrono::steady_clock::time_point deadline;  // guarded by mutex
        std::uint64_t upto = 0;                          // guarded by mutex
        std::vector<std::pair<std::uint64_t, std::shared_ptr<std::string const>>>
            events;  // guarded by mutex: per cursor read from, the event (null: no change)
    };
    // The shared_tick of a stream's query and interval (`key`), made when missing; those
    // no stream holds any more are dropped now and then.
    std::shared_ptr<shared_tick> tick_of(std::string const& key);

    flow_store& store_;
    stream_options options_;
    stream_metrics& metrics_;
    query_limits limits_;
    change_journal journal_;
    std::uint64_t epoch_;
    mutable std::mutex mutex_;
    std::vector<std::weak_ptr<stream_subscription>> streams_;  // guarded by mutex_
    std::size_t open_ = 0;                                     // guarded by mutex_
    bool shut_ = false;                                        // guarded by mutex_
    std::mutex ticks_mutex_;
    std::unordered_map<std::string, std::shared_ptr<shared_tick>>
        ticks_;                                          // guarded by ticks_mutex_
    std::chrono::steady_clock::time_point ticks_swept_;  // guarded by ticks_mutex_
};

}  // namespace flowd
