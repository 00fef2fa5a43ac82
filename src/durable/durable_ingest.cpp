#include "flowd/durable/durable_ingest.hpp"

#include "flowd/durable/recovery.hpp"
#include "flowd/ingest/memory_ingest.hpp"

namespace flowd {

namespace {

problem log_unavailable() {
    return problem{problem_type::log_unavailable,
                   "the write-ahead log cannot be written (see flowd's log); nothing of this "
                   "batch was applied: retry later",
                   {},
                   {}};
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

durable_ingest::durable_ingest(flow_store& store, idempotency_table& idempotency,
                               service_metrics& metrics, durable_options options,
                               std::shared_ptr<spdlog::logger> log)
    : store_(store),
      idempotency_(idempotency),
      metrics_(metrics),
      options_(std::move(options)),
      log_(std::move(log)),
      wal_(wal::wal_writer::options{options_.dir, options_.segment_bytes, !options_.fsync_always},
           [this](double seconds) { metrics_.wal_fsync_duration.Observe(seconds); }),
      checkpoints_(
          options_.dir, store_, log_,
          [this](wal::checkpoint_job const& job, wal::checkpoint_written const& w) {
              metrics_.checkpoint_duration.Observe(w.seconds);
              metrics_.checkpoint_last_success.Set(static_cast<double>(wall_clock_ms()) / 1000.0);
              log_->info(
                  "checkpoint {}: {} keys, {} idempotency keys, {} bytes, {:.3f} s; {} old "
                  "files removed",
                  wal::snapshot_name(job.seq), w.info.keys, w.info.idempotency_keys, w.info.bytes,
                  w.seconds, w.files_removed);
          },
          [this](std::string const& what) {
              log_->error("checkpoint failed (the log still holds everything; retried later): {}",
                          what);
          }) {}

durable_ingest::~durable_ingest() {
    stop();
}

wal::recovery_result durable_ingest::recover(bool truncate_corrupt) {
    auto const started = clock::now();
    wal::recovery_result r =
        wal::recover(wal::recovery_options{options_.dir, truncate_corrupt, wall_clock_ms()}, store_,
                     idempotency_, *log_);
    next_seq_ = r.next_seq;
    checkpointed_seq_ = r.snapshot_seq;
    log_bytes_since_checkpoint_ = r.log_bytes;
    if (r.last_segment) {
        resume_ = wal::synced_position{*r.last_segment, r.last_segment_size};
        resume_older_version_ = r.last_segment_version < wal::segment_version;
    }
    metrics_.flows_applied_replay.Increment(static_cast<double>(r.flows_replayed));
    double const seconds = seconds_since(started);
    metrics_.recovery_duration.Set(seconds);
    log_->info(
        "recovered {}: snapshot {} ({} keys, covers log record {}), {} log records replayed "
        "({} flow records, {} bytes), {} keys, {:.3f} s",
        options_.dir.string(), r.snapshot.empty() ? "none" : r.snapshot, r.snapshot_keys,
        r.snapshot_seq, r.records_replayed, r.flows_replayed, r.log_bytes, store_.key_count(),
        seconds);
    if (r.records_set_aside != 0) {
        log_->warn(
            "recovered {} without {} log records ({} bytes): --truncate-corrupt-log set them "
            "aside in *.discarded files next to the log; remove the flag for the next start",
            options_.dir.string(), r.records_set_aside, r.bytes_set_aside);
    }
    return r;
}

void durable_ingest::start() {
    wal_.open(resume_, next_seq_);
    if (resume_ && resume_older_version_) {
        // Not appended to: a segment holds records of its own version only (wal_format.hpp).
        wal_.rotate(next_seq_);
    }
    auto const now = clock::now();
    next_sync_ = now + options_.fsync_interval;
    last_checkpoint_ = now;
    log_->info("write-ahead log {}: appending to {} at offset {}, fsync {}", options_.dir.string(),
               wal::segment_name(wal_.segment_first()), wal_.segment_size(),
               options_.fsync_always
                   ? "always (group commit)"
                   : "every " + std::to_string(options_.fsync_interval.count()) + " ms");
    checkpoints_.start();
    log_thread_ = std::thread([this] { log_loop(); });
}

void durable_ingest::submit(flow_batch batch, ingest_request info, completion done) {
    auto prepared = store_.prepare(batch);
    if (auto* rejected = std::get_if<store_rejection>(&prepared)) {
        count_store_limit(metrics_, *rejected);
        return done(ingest_outcome::refused(to_problem(*rejected, store_.max_keys())));
    }
    if (!healthy()) {
        return done(ingest_outcome::refused(log_unavailable()));
    }
    item it;
    it.payload = wal::encode_payload(batch, info.idempotency ? &*info.idempotency : nullptr,
                                     info.accepted_unix_ms);
    it.prepared.emplace(std::get<prepared_batch>(std::move(prepared)));
    it.done = std::move(done);
    it.records = batch.record_count();
    it.source = info.source;
    bool notify = false;
    {
        std::unique_lock lock{mutex_};
        if (stopping_) {
            lock.unlock();
            it.prepared.reset();
            return it.done(ingest_outcome::refused(log_unavailable()));
        }
        queue_.push_back(std::move(it));
        notify = writer_waiting_;
    }
    if (notify) {
        wake_.notify_one();
    }
}

void durable_ingest::fail_all(std::vector<item>& items) {
    for (item& it : items) {
        it.prepared.reset();  // gives the key reservation back
        it.done(ingest_outcome::refused(log_unavailable()));
    }
    items.clear();
}

void durable_ingest::mark_failed(std::string const& why) {
    if (healthy_.exchange(false, std::memory_order_acq_rel)) {
        log_->error(
            "write-ahead log unavailable: {}; POST /flows answers 503 log-unavailable and "
            "/readyz 503 until a write succeeds again (retried every second)",
            why);
    }
    next_heal_ = clock::now() + std::chrono::seconds(1);
}

void durable_ingest::try_heal() {
    if (!wal_.heal()) {
        next_heal_ = clock::now() + std::chrono::seconds(1);
        return;
    }
    healthy_.store(true, std::memory_order_release);
    log_->warn("write-ahead log writable again: POST /flows and /readyz are back");
}

void durable_ingest::write_group(std::vector<item>& items) {
    if (!healthy()) {
        return fail_all(items);
    }
    std::size_t total = 0;
    for (item const& it : items) {
        total += wal::frame_header_size + it.payload.bytes.size();
    }
    try {
        if (wal_.needs_rotation(total)) {
            wal_.rotate(next_seq_);
        }
    } catch (wal::io_error const& e) {
        mark_failed(e.what());
        return fail_all(items);
    }
    try {
        // Each frame's header, then its payload where submit() encoded it: no copy into one
        // buffer first.
        headers_.resize(items.size());
        pieces_.clear();
        for (std::size_t i = 0; i < items.size(); ++i) {
            std::string const& payload = items[i].payload.bytes;
            headers_[i] = wal::frame_header(
                next_seq_ + i, static_cast<std::uint32_t>(payload.size()), items[i].payload.crc);
            pieces_.emplace_back(headers_[i].data(), headers_[i].size());
            pieces_.emplace_back(payload);
        }
        // On a failure the writer cuts the group off again: nothing of it is applied or
        // acknowledged, so none of it may come back at the next start either.
        wal_.append(pieces_, options_.fsync_always);
    } catch (wal::io_error const& e) {
        mark_failed(e.what());
        return fail_all(items);
    }
    metrics_.wal_bytes.Increment(static_cast<double>(total));
    log_bytes_since_checkpoint_ += total;
    for (item& it : items) {
        store_.commit(std::move(*it.prepared));
        it.prepared.reset();
        ++next_seq_;
        (it.source == ingest_source::flow ? metrics_.flows_applied_flow
                                          : metrics_.flows_applied_post)
            .Increment(static_cast<double>(it.records));
        it.done(ingest_outcome::applied(it.records));
    }
    items.clear();
}

std::optional<wal::checkpoint_job> durable_ingest::take_checkpoint() {
    std::uint64_t const seq = next_seq_ - 1;
    if (seq == checkpointed_seq_) {
        return std::nullopt;
    }
    wal::checkpoint_job job;
    job.seq = seq;
    // On the log thread, between groups: the store and the keys are exactly the log up to seq.
    job.keys = store_.export_all();
    job.idempotency = idempotency_.completed(wall_clock_ms());
    checkpointed_seq_ = seq;
    log_bytes_since_checkpoint_ = 0;
    last_checkpoint_ = clock::now();
    return job;
}

void durable_ingest::log_loop() {
    std::vector<item> group;
    std::unique_lock lock{mutex_};
    while (true) {
        auto deadline = last_checkpoint_ + options_.checkpoint_interval;
        if (wal_.dirty() && !options_.fsync_always) {
            deadline = std::min(deadline, next_sync_);
        }
        if (!healthy()) {
            deadline = std::min(deadline, next_heal_);
        }
        writer_waiting_ = true;
        wake_.wait_until(lock, deadline, [this] { return !queue_.empty() || stopping_; });
        writer_waiting_ = false;
        group.swap(queue_);
        bool const stopping = stopping_;
        lock.unlock();

        if (!group.empty()) {
            write_group(group);
        }
        auto const now = clock::now();
        if (!healthy() && now >= next_heal_) {
            try_heal();
        }
        if (healthy() && wal_.dirty() && !options_.fsync_always && now >= next_sync_) {
            try {
                wal_.sync();
            } catch (wal::io_error const& e) {
                mark_failed(e.what());
            }
            next_sync_ = now + options_.fsync_interval;
        } else if (!wal_.dirty()) {
            next_sync_ = now + options_.fsync_interval;
        }
        bool const due = now >= last_checkpoint_ + options_.checkpoint_interval ||
                         log_bytes_since_checkpoint_ >= options_.checkpoint_log_bytes;
        if (due && !stopping) {
            if (!checkpoints_.busy()) {
                if (auto job = take_checkpoint()) {
                    checkpoints_.offer(std::move(*job));
                } else {
                    last_checkpoint_ = now;
                }
            } else {
                // The previous one is still writing: look again in a second.
                last_checkpoint_ = now - options_.checkpoint_interval + std::chrono::seconds(1);
            }
        }

        lock.lock();
        if (stopping && queue_.empty()) {
            break;
        }
    }
    lock.unlock();
    // Clean shutdown: everything acknowledged goes to disk, then one last checkpoint so the
    // next start reads a snapshot rather than the log.
    if (healthy() && wal_.dirty()) {
        try {
            wal_.sync();
        } catch (wal::io_error const& e) {
            mark_failed(e.what());
        }
    }
    checkpoints_.wait_idle();
    if (healthy()) {
        if (auto job = take_checkpoint()) {
            checkpoints_.write_now(*job);
        }
    }
}

void durable_ingest::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    {
        std::scoped_lock lock{mutex_};
        stopping_ = true;
    }
    wake_.notify_all();
    if (log_thread_.joinable()) {
        log_thread_.join();
    }
    checkpoints_.stop();
}

}  // namespace flowd
