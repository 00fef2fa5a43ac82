#pragma once

#include <pthread.h>

namespace flowd {

// Makes batches atomic to readers: appliers hold the gate shared (many at once), a reader
// holds it exclusive only while it copies one hour out. Writer-preferring, so a steady
// stream of appliers cannot starve a reader (glibc's default rwlock prefers readers,
// which here are the appliers). The class is thread-safe.
class batch_gate {
public:
    batch_gate() noexcept {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&lock_, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    ~batch_gate() { pthread_rwlock_destroy(&lock_); }
    batch_gate(batch_gate const&) = delete;
    batch_gate& operator=(batch_gate const&) = delete;

    // SharedLockable and Lockable, for std::shared_lock and std::unique_lock.
    void lock_shared() noexcept { pthread_rwlock_rdlock(&lock_); }
    void unlock_shared() noexcept { pthread_rwlock_unlock(&lock_); }
    void lock() noexcept { pthread_rwlock_wrlock(&lock_); }
    void unlock() noexcept { pthread_rwlock_unlock(&lock_); }

private:
    pthread_rwlock_t lock_{};
};

}  // namespace flowd
