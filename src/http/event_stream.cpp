#include "flowd/http/event_stream.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <random>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/json_writer.hpp"
#include "flowd/metrics/stream_metrics.hpp"

namespace flowd {

namespace net = boost::asio;

void append_sse_event(std::string& out, std::string_view id, std::string_view event,
                      std::string_view data) {
    if (!id.empty()) {
        out.append("id: ").append(id).push_back('\n');
    }
    if (!event.empty()) {
        out.append("event: ").append(event).push_back('\n');
    }
    // Every line of the payload its own data: line; a client joins them with '\n'.
    std::size_t pos = 0;
    for (;;) {
        std::size_t const nl = data.find('\n', pos);
        out.append("data: ").append(
            data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
        out.push_back('\n');
        if (nl == std::string_view::npos) {
            break;
        }
        pos = nl + 1;
    }
    out.push_back('\n');
}

void append_sse_comment(std::string& out, std::string_view text) {
    out.append(": ").append(text).append("\n\n");
}

std::string format_event_id(stream_event_id const& id) {
    std::string out;
    out.reserve(48);
    char buf[20];
    auto put = [&](std::uint64_t v, int base) {
        auto const r = std::to_chars(std::begin(buf), std::end(buf), v, base);
        out.append(std::begin(buf), r.ptr);
    };
    put(id.epoch, 16);
    out.push_back('-');
    put(id.seq, 10);
    out.push_back('-');
    put(id.unix_ms, 10);
    return out;
}

std::optional<stream_event_id> parse_event_id(std::string_view text) {
    stream_event_id id;
    std::array<std::uint64_t*, 3> const parts{&id.epoch, &id.seq, &id.unix_ms};
    std::size_t pos = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        std::size_t const end = i + 1 == parts.size() ? text.size() : text.find('-', pos);
        if (end == std::string_view::npos || end == pos) {
            return std::nullopt;
        }
        std::string_view const part = text.substr(pos, end - pos);
        auto const r =
            std::from_chars(part.data(), part.data() + part.size(), *parts.at(i), i == 0 ? 16 : 10);
        if (r.ec != std::errc{} || r.ptr != part.data() + part.size()) {
            return std::nullopt;
        }
        pos = end + 1;
    }
    return id;
}

resume_decision decide_resume(std::string_view last_event_id, std::uint64_t epoch,
                              std::uint64_t now_ms, std::chrono::milliseconds resume,
                              change_journal const& journal, std::uint32_t from, std::uint32_t to) {
    if (last_event_id.empty()) {
        return resume_decision::fresh;
    }
    std::optional<stream_event_id> const id = parse_event_id(last_event_id);
    if (!id || id->epoch != epoch || id->seq == 0 || id->unix_ms > now_ms ||
        now_ms - id->unix_ms > static_cast<std::uint64_t>(resume.count()) ||
        !journal.holds_since(id->seq - 1, from, to)) {
        return resume_decision::reset;
    }
    return resume_decision::resume;
}

namespace {

std::uint64_t unix_ms_now() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

}  // namespace

// One open stream: a full send (hour by hour, copied as the socket drains), `synced`, then
// the journal's changes every interval. Its timer runs on its own strand; the session
// pulls from its own. The class is thread-safe.
class stream_subscription final : public event_source,
                                  public std::enable_shared_from_this<stream_subscription> {
public:
    stream_subscription(stream_hub& hub, query_plan plan, std::chrono::milliseconds interval,
                        net::any_io_executor const& executor)
        : hub_(hub),
          plan_(std::move(plan)),
          interval_(interval),
          filtered_(plan_.filters[0].active() || plan_.filters[1].active() ||
                    plan_.filters[2].active()),
          shared_(hub_.tick_of(plan_.normalised + "&interval=" + std::to_string(interval.count()))),
          timer_(net::make_strand(executor)),
          last_sent_(std::chrono::steady_clock::now()) {}

    ~stream_subscription() override { release(); }
    stream_subscription(stream_subscription const&) = delete;
    stream_subscription& operator=(stream_subscription const&) = delete;

    // Starts after the hub counted the stream. `resume_seq`: resume from there when the
    // journal still holds every change of the stream's hours after it; else a full send,
    // preceded by a reset event when `announce_reset` or the resume failed. Returns whether
    // it resumed.
    bool start(std::optional<std::uint64_t> resume_seq, bool announce_reset) {
        bool resumed = false;
        {
            std::scoped_lock lock{mutex_};
            change_journal::watch const w =
                hub_.journal_.subscribe(plan_.from, plan_.to, resume_seq);
            watcher_ = w.id;
            resumed = w.resumed;
            if (resumed) {
                cursor_ = w.seq;
                live_ = true;
            } else {
                begin_full_send_locked(w.seq, announce_reset || resume_seq.has_value());
            }
        }
        arm();
        return resumed;
    }

    void pull(deliver_fn deliver) override {
        piece_type piece;
        bool end = false;
        {
            std::scoped_lock lock{mutex_};
            if (stopped_ || ended_) {
                end = true;
            } else if (!ready_.empty()) {
                take_ready_locked(piece);
            } else if (!live_) {
                std::string event;
                next_full_event_locked(event);
                piece.push_back(std::make_shared<std::string const>(std::move(event)));
            } else {
                waiting_ = std::move(deliver);
                return;
            }
            last_sent_ = std::chrono::steady_clock::now();
        }
        deliver(std::move(piece), end);
    }

    void stop() override {
        std::scoped_lock lock{mutex_};
        stopped_ = true;
        waiting_ = nullptr;
        hours_.clear();
        rows_.clear();
        ready_.clear();
        ready_bytes_ = 0;
    }

    // Shutdown: the body ends at the next pull (or now, for a waiting one).
    void end() {
        deliver_fn waiting;
        {
            std::scoped_lock lock{mutex_};
            ended_ = true;
            waiting.swap(waiting_);
        }
        if (waiting) {
            waiting(piece_type{}, true);
        }
    }

private:
    friend class stream_hub;

    void release() {
        std::scoped_lock lock{mutex_};
        if (watcher_ != 0) {
            hub_.journal_.unsubscribe(watcher_);
            watcher_ = 0;
        }
        if (counted_) {
            counted_ = false;
            hub_.closed(this);
        }
    }

    [[nodiscard]] bool keep(app_key const& k) const {
        return (!plan_.filters[0].active() || plan_.filters[0].passes(hub_.store_.name(k.src))) &&
               (!plan_.filters[1].active() || plan_.filters[1].passes(hub_.store_.name(k.dest))) &&
               (!plan_.filters[2].active() || plan_.filters[2].passes(hub_.store_.name(k.vpc)));
    }

    // A full send from the journal's sequence `seq` on: the hours that hold data now,
    // each copied only when the previous one is written.
    void begin_full_send_locked(std::uint64_t seq, bool announce_reset) {
        live_ = false;
        cursor_ = seq;
        sent_rows_ = 0;
        rows_.clear();
        next_row_ = 0;
        hours_.clear();
        for (hour_stat const& h : hub_.store_.hour_stats(plan_.from, plan_.to)) {
            hours_.push_back(h.hour);
        }
        next_hour_ = 0;
        if (announce_reset) {
            std::string reset;
            append_sse_event(reset, format_event_id({hub_.epoch_, 0, unix_ms_now()}), "reset",
                             "{}");
            queue_locked(std::make_shared<std::string const>(std::move(reset)));
        }
    }

    // The next `rows` event of the full send, or `synced` once every row was sent.
    void next_full_event_locked(std::string& out) {
        while (next_row_ == rows_.size() && next_hour_ < hours_.size()) {
            rows_.clear();
            next_row_ = 0;
            std::uint32_t const h = hours_[next_hour_++];
            (void)hub_.store_.copy_range(
                h, h + 1, hub_.limits_.max_query_scan_rows,
                [this](app_key const& k) { return keep(k); }, rows_);
        }
        std::string const id = format_event_id({hub_.epoch_, 0, unix_ms_now()});
        if (next_row_ == rows_.size()) {
            rows_ = {};
            hours_ = {};
            live_ = true;
            append_sse_event(out, format_event_id({hub_.epoch_, cursor_ + 1, unix_ms_now()}),
                             "synced", "{\"rows\":" + std::to_string(sent_rows_) + "}");
            return;
        }
        std::size_t const last = std::min(rows_.size(), next_row_ + hub_.options_.rows_per_event);
        json_.assign("[");
        for (std::size_t i = next_row_; i < last; ++i) {
            if (i != next_row_) {
                json_.push_back(',');
            }
            flow_store::exported_key const& r = rows_[i];
            append_flow_json(json_, hub_.store_.name(r.key.src), hub_.store_.name(r.key.dest),
                             hub_.store_.name(r.key.vpc), r.counters, r.hour);
        }
        json_.push_back(']');
        sent_rows_ += last - next_row_;
        next_row_ = last;
        append_sse_event(out, id, "rows", json_);
    }

    // The next multiple of the interval on the steady clock: streams of one interval tick
    // together, so those of one query can share their events (next_rows_event_locked()).
    void arm() {
        auto const now = std::chrono::steady_clock::now().time_since_epoch();
        auto const deadline = std::chrono::steady_clock::time_point{
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval_ *
                                                                            (now / interval_ + 1))};
        timer_.expires_at(deadline);
        timer_.async_wait([weak = weak_from_this(), deadline](boost::system::error_code ec) {
            if (auto self = weak.lock(); self && !ec) {
                self->tick(deadline);
            }
        });
    }

    // This tick's `rows` event (null when nothing changed), and the cursor after it; nothing
    // when the journal no longer holds the changes since the cursor. The first stream of
    // the query to tick reads the journal up to now, and every later one up to that same
    // point: streams that read from the same cursor take the event the first of them wrote.
    std::optional<std::uint64_t> next_rows_event_locked(
        std::chrono::steady_clock::time_point deadline, std::shared_ptr<std::string const>& event) {
        stream_hub::shared_tick& t = *shared_;
        std::scoped_lock lock{t.mutex};
        std::uint64_t until = std::numeric_limits<std::uint64_t>::max();
        if (t.deadline == deadline) {
            for (auto const& [since, e] : t.events) {
                if (since == cursor_) {
                    event = e;
                    return t.upto;
                }
            }
            until = t.upto;
        }
        changed_.clear();
        std::uint64_t upto = cursor_;
        std::function<bool(changed_row const&)> filter;
        if (filtered_) {
            filter = [this](changed_row const& r) { return keep(r.key); };
        }
        if (!hub_.journal_.read_between(cursor_, until, plan_.from, plan_.to, filter, changed_,
                                        upto)) {
            return std::nullopt;
        }
        if (!changed_.empty()) {
            json_.assign("[");
            for (changed_row const& r : changed_) {
                if (json_.size() > 1) {
                    json_.push_back(',');
                }
                append_flow_json(json_, hub_.store_.name(r.key.src), hub_.store_.name(r.key.dest),
                                 hub_.store_.name(r.key.vpc), r.counters, r.hour);
            }
            json_.push_back(']');
            std::string e;
            append_sse_event(e, format_event_id({hub_.epoch_, upto + 1, unix_ms_now()}), "rows",
                             json_);
            event = std::make_shared<std::string const>(std::move(e));
        }
        if (changed_.capacity() > 4096) {
            changed_ = {};  // a burst's buffer is not kept for an idle stream
        }
        if (t.deadline != deadline) {
            t.deadline = deadline;
            t.upto = upto;
            t.events.clear();
        }
        // A few cursors a tick at most: streams that synced at different moments all
        // reach the same cursor after one tick, and the events stay few.
        if (upto == t.upto && t.events.size() < 4) {
            t.events.emplace_back(cursor_, event);
        }
        return upto;
    }

    // Every interval: the changes since the cursor as one event, the buffer bound, and the
    // keep-alive comment.
    void tick(std::chrono::steady_clock::time_point deadline) {
        deliver_fn waiting;
        piece_type piece;
        {
            std::scoped_lock lock{mutex_};
            if (stopped_ || ended_) {
                return;
            }
            if (live_) {
                std::shared_ptr<std::string const> event;
                std::optional<std::uint64_t> const upto = next_rows_event_locked(deadline, event);
                if (!upto) {
                    reset_locked();
                } else {
                    cursor_ = *upto;
                    if (event) {
                        queue_locked(std::move(event));
                        if (ready_bytes_ > hub_.options_.buffer_bytes) {
                            reset_locked();
                        }
                    }
                }
            }
            if (ready_.empty() && waiting_ &&
                std::chrono::steady_clock::now() - last_sent_ >= hub_.options_.keep_alive) {
                std::string comment;
                append_sse_comment(comment, "keep-alive");
                queue_locked(std::make_shared<std::string const>(std::move(comment)));
            }
            if (waiting_ && !ready_.empty()) {
                waiting.swap(waiting_);
                take_ready_locked(piece);
                last_sent_ = std::chrono::steady_clock::now();
            }
        }
        if (waiting) {
            waiting(std::move(piece), false);
        }
        arm();
    }

    void queue_locked(std::shared_ptr<std::string const> text) {
        ready_bytes_ += text->size();
        ready_.push_back(std::move(text));
    }
    void take_ready_locked(piece_type& piece) {
        piece.swap(ready_);
        ready_.clear();
        ready_bytes_ = 0;
    }

    // The client fell behind (or past what the journal holds): what was queued is dropped,
    // and a reset event and a full send follow, written as the socket drains.
    void reset_locked() {
        hub_.metrics_.resets_slow.Increment();
        ready_ = {};
        ready_bytes_ = 0;
        begin_full_send_locked(hub_.journal_.sequence(), true);
    }

    stream_hub& hub_;
    query_plan const plan_;
    std::chrono::milliseconds const interval_;
    bool const filtered_;  // a filter is active: changed rows are checked by name
    std::shared_ptr<stream_hub::shared_tick> const shared_;
    net::steady_timer timer_;  // touched only by start() and its own handler (its strand)
    std::mutex mutex_;
    std::uint64_t watcher_ = 0;                   // guarded by mutex_: 0 before start()
    bool counted_ = true;                         // guarded by mutex_
    bool stopped_ = false;                        // guarded by mutex_
    bool ended_ = false;                          // guarded by mutex_
    bool live_ = false;                           // guarded by mutex_: past `synced`
    std::uint64_t cursor_ = 0;                    // guarded by mutex_: journal sequence sent up to
    piece_type ready_;                            // guarded by mutex_: events not yet pulled
    std::size_t ready_bytes_ = 0;                 // guarded by mutex_: their bytes
    deliver_fn waiting_;                          // guarded by mutex_: a pull waiting for events
    std::vector<std::uint32_t> hours_;            // guarded by mutex_: the full send's hours
    std::size_t next_hour_ = 0;                   // guarded by mutex_
    std::vector<flow_store::exported_key> rows_;  // guarded by mutex_: the hour being sent
    std::size_t next_row_ = 0;                    // guarded by mutex_
    std::uint64_t sent_rows_ = 0;                 // guarded by mutex_
    std::vector<changed_row> changed_;            // guarded by mutex_
    std::string json_;                            // guarded by mutex_
    std::chrono::steady_clock::time_point last_sent_;  // guarded by mutex_
};

stream_hub::stream_hub(flow_store& store, stream_options options, stream_metrics& metrics,
                       query_limits limits)
    : store_(store),
      options_(options),
      metrics_(metrics),
      limits_(limits),
      journal_(store, options.journal_rows, options.resume),
      epoch_(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)) {}

stream_hub::~stream_hub() {
    shutdown();
}

std::shared_ptr<event_source> stream_hub::open(query_plan const& plan,
                                               std::chrono::milliseconds interval,
                                               std::string_view last_event_id,
                                               net::any_io_executor executor, bool& too_many_rows) {
    too_many_rows = false;
    std::uint64_t rows = 0;
    for (hour_stat const& h : store_.hour_stats(plan.from, plan.to)) {
        rows += h.keys;
    }
    if (rows > limits_.max_query_scan_rows) {
        too_many_rows = true;
        return nullptr;
    }
    auto s = std::make_shared<stream_subscription>(*this, plan, interval, executor);
    {
        std::scoped_lock lock{mutex_};
        if (shut_ || open_ >= options_.max_streams) {
            s->counted_ = false;
            return nullptr;
        }
        ++open_;
        std::erase_if(streams_, [](auto const& w) { return w.expired(); });
        streams_.push_back(s);
    }
    metrics_.streams_open.Increment();
    resume_decision const d = decide_resume(last_event_id, epoch_, unix_ms_now(), options_.resume,
                                            journal_, plan.from, plan.to);
    std::optional<std::uint64_t> resume_seq;
    if (d == resume_decision::resume) {
        resume_seq = parse_event_id(last_event_id)->seq - 1;
    }
    // start() checks the journal again as it subscribes: the resume window may have closed
    // since.
    if (!s->start(resume_seq, d == resume_decision::reset) && d != resume_decision::fresh) {
        metrics_.resets_resume.Increment();
    }
    return s;
}

std::shared_ptr<stream_hub::shared_tick> stream_hub::tick_of(std::string const& key) {
    std::scoped_lock lock{ticks_mutex_};
    auto const now = std::chrono::steady_clock::now();
    if (now - ticks_swept_ > std::chrono::seconds{10}) {
        ticks_swept_ = now;
        std::erase_if(ticks_, [](auto const& t) { return t.second.use_count() == 1; });
    }
    std::shared_ptr<shared_tick>& t = ticks_[key];
    if (!t) {
        t = std::make_shared<shared_tick>();
    }
    return t;
}

void stream_hub::closed(stream_subscription const*) {
    {
        std::scoped_lock lock{mutex_};
        --open_;
    }
    metrics_.streams_open.Decrement();
}

std::size_t stream_hub::open_count() const {
    std::scoped_lock lock{mutex_};
    return open_;
}

void stream_hub::shutdown() {
    std::vector<std::shared_ptr<stream_subscription>> open;
    {
        std::scoped_lock lock{mutex_};
        shut_ = true;
        for (auto const& w : streams_) {
            if (auto s = w.lock()) {
                open.push_back(std::move(s));
            }
        }
    }
    for (auto const& s : open) {
        s->end();
    }
}

}  // namespace flowd
