#include "flowd/durable/checkpointer.hpp"

#include <chrono>
#include <exception>
#include <utility>

#include "flowd/domain/retention.hpp"

namespace flowd::wal {

checkpointer::checkpointer(std::filesystem::path dir, flow_store const& names,
                           std::shared_ptr<spdlog::logger> log, written_fn written,
                           failed_fn failed)
    : dir_(std::move(dir)),
      names_(names),
      log_(std::move(log)),
      written_(std::move(written)),
      failed_(std::move(failed)) {}

void checkpointer::start() {
    if (!thread_.joinable()) {
        thread_ = std::thread([this] { loop(); });
    }
}

bool checkpointer::busy() const {
    std::scoped_lock lock{mutex_};
    return writing_ || pending_.has_value();
}

bool checkpointer::offer(checkpoint_job job) {
    {
        std::scoped_lock lock{mutex_};
        if (writing_ || pending_) {
            return false;
        }
        pending_ = std::move(job);
    }
    wake_.notify_all();
    return true;
}

void checkpointer::wait_idle() {
    std::unique_lock lock{mutex_};
    wake_.wait(lock, [this] { return !writing_ && !pending_; });
}

void checkpointer::write_now(checkpoint_job const& job) {
    auto const started = std::chrono::steady_clock::now();
    try {
        checkpoint_written w;
        w.info = write_snapshot(dir_, job.seq, job.keys, names_, job.idempotency, wall_clock_ms());
        w.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        w.files_removed = remove_covered_files(dir_, *log_);
        written_(job, w);
    } catch (std::exception const& e) {
        failed_(e.what());
    }
}

void checkpointer::loop() {
    std::unique_lock lock{mutex_};
    while (true) {
        wake_.wait(lock, [this] { return pending_ || stopping_; });
        if (!pending_) {
            return;  // stopping, nothing left to write
        }
        checkpoint_job job = std::move(*pending_);
        pending_.reset();
        writing_ = true;
        lock.unlock();
        write_now(job);
        lock.lock();
        writing_ = false;
        wake_.notify_all();
    }
}

void checkpointer::stop() {
    {
        std::scoped_lock lock{mutex_};
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

}  // namespace flowd::wal
