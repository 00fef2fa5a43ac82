#include "flowd/durable/recovery.hpp"

#include <algorithm>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_support.hpp"
#include "flowd/durable/crc32c.hpp"

namespace flowd::wal {

namespace fs = std::filesystem;

namespace {

// The log records in `bytes`, frames that may start with a corrupt one: a frame whose
// length field fits counts whatever its checksum; bytes left that no length frames count
// as one record.
std::uint64_t count_records(std::string_view bytes) {
    std::uint64_t n = 0;
    while (!bytes.empty()) {
        ++n;
        reader in{bytes};
        std::uint64_t const size = in.u32();
        if (!in.ok() || bytes.size() < frame_header_size || size == 0 || size > max_payload_size ||
            bytes.size() - frame_header_size < size) {
            break;
        }
        bytes.remove_prefix(frame_header_size + size);
    }
    return n;
}

// Writes `bytes` to a new file `path` and makes it durable, so what a cut removes from a
// segment exists elsewhere before the segment is shortened.
void write_new_file(fs::path const& path, std::string_view bytes) {
    fd_guard fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (fd.get() < 0) {
        throw io_error(errno_text("create " + path.string()));
    }
    write_all(fd.get(), bytes, path.string());
    sync_file(fd.get(), path.string());
    sync_directory(path.parent_path());
}

// `name`.discarded, or `name`.discarded.N when an earlier cut already left one.
fs::path discarded_name(fs::path const& path) {
    fs::path aside = path.string() + ".discarded";
    for (int n = 1; fs::exists(aside); ++n) {
        aside = path.string() + ".discarded." + std::to_string(n);
    }
    return aside;
}

void truncate_file(fs::path const& path, std::uint64_t size) {
    fd_guard fd{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
    if (fd.get() < 0) {
        throw io_error(errno_text("open " + path.string()));
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        throw io_error(errno_text("truncate " + path.string()));
    }
    sync_file(fd.get(), path.string());
}

// A checkpoint that never finished leaves a .tmp file: never renamed, never valid.
void remove_unfinished_snapshots(fs::path const& dir, spdlog::logger& log) {
    std::error_code ec;
    for (auto const& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() == ".tmp") {
            log.warn("removing {}: a checkpoint that did not finish", e.path().string());
            fs::remove(e.path(), ec);
        }
    }
}

// Loads the newest snapshot that verifies and whose log follows it without a gap, and
// notes it in `r`; nothing when none does.
void load_newest_snapshot(dir_listing const& files, recovery_options const& options,
                          flow_store& store, idempotency_table& idempotency, spdlog::logger& log,
                          recovery_result& r) {
    for (auto it = files.snapshots.rbegin(); it != files.snapshots.rend(); ++it) {
        mapped_file const f{it->second};
        std::string why;
        auto const info = verify_snapshot(f.bytes(), &why);
        if (!info) {
            log.warn("snapshot {} is not usable ({}); trying an older one", it->second.string(),
                     why);
            continue;
        }
        bool const log_reaches =
            files.segments.empty() || files.segments.begin()->first <= info->covered_seq + 1;
        if (!log_reaches) {
            log.warn(
                "snapshot {}: the log after it starts at record {}, not {}; trying an older "
                "one",
                it->second.string(), files.segments.begin()->first, info->covered_seq + 1);
            continue;
        }
        load_snapshot(f.bytes(), store, idempotency, options.now_unix_ms);
        r.snapshot = it->second.string();
        r.snapshot_seq = info->covered_seq;
        r.snapshot_keys = info->keys;
        return;
    }
}

// Where replaying a segment stopped: its end, or the first thing wrong (`problem`).
struct segment_end {
    std::uint64_t offset = 0;
    std::string problem;  // empty: the segment was whole
};

// Replays the records of segment `first` (its bytes `data`) from `expected` on; records
// before `expected` are in the snapshot already. Throws recovery_error when records are
// missing.
segment_end replay_segment(std::uint64_t first, fs::path const& path, std::string_view data,
                           std::uint64_t& expected, recovery_options const& options,
                           flow_store& store, idempotency_table& idempotency, recovery_result& r) {
    auto const header = read_segment_header(data);
    if (!header || *header != first) {
        return {0, data.size() < segment_header_size ? "a torn segment header"
                                                     : "a bad segment header"};
    }
    std::uint64_t offset = segment_header_size;
    while (offset < data.size()) {
        frame const fr = read_frame(data.substr(offset));
        if (fr.what != frame::status::ok) {
            return {offset, fr.what == frame::status::incomplete ? "a torn record"
                                                                 : "a record with a bad checksum"};
        }
        if (fr.seq >= expected) {
            if (fr.seq != expected) {
                throw recovery_error(path.string() + " offset " + std::to_string(offset) +
                                     ": log records " + std::to_string(expected) + ".." +
                                     std::to_string(fr.seq - 1) + " are missing");
            }
            auto rec = decode_payload(fr.payload);
            if (!rec) {
                return {offset, "a record that does not decode"};
            }
            store.replay(rec->batch);
            if (rec->idempotency) {
                idempotency.restore(
                    idempotency_table::entry{*rec->idempotency, rec->batch.record_count(),
                                             rec->accepted_unix_ms},
                    options.now_unix_ms);
            }
            ++r.records_replayed;
            r.flows_replayed += rec->batch.record_count();
            r.log_bytes += fr.size;
            ++expected;
        }
        offset += fr.size;
    }
    return {offset, {}};
}

// The log ends at `end` of segment `it` (its bytes `data`): cuts the segment there and
// moves every later segment aside. `tail`: what goes was never durable, so it is dropped;
// else (--truncate-corrupt-log) it is kept in *.discarded files and counted in `r`.
void cut_log(std::map<std::uint64_t, fs::path> const& segments,
             std::map<std::uint64_t, fs::path>::const_iterator it, std::string_view data,
             segment_end const& end, bool tail, std::string const& where, recovery_result& r,
             spdlog::logger& log) {
    fs::path const& path = it->second;
    std::uint64_t const offset = end.offset;
    // What is set aside: valid records may follow the corrupt one.
    std::vector<std::string> kept;
    std::uint64_t records_aside = 0;
    std::uint64_t bytes_aside = 0;
    for (auto later = std::next(it); later != segments.end(); ++later) {
        fs::path const aside = discarded_name(later->second);
        if (!tail) {
            mapped_file const lf{later->second};
            std::string_view const lb = lf.bytes();
            records_aside +=
                count_records(lb.substr(std::min<std::size_t>(segment_header_size, lb.size())));
            bytes_aside += lb.size();
        }
        log.warn("write-ahead log: moving {} aside to {}", later->second.string(), aside.string());
        fs::rename(later->second, aside);
        kept.push_back(aside.string());
    }
    if (offset < segment_header_size) {
        // Nothing of this segment is usable, not even its header.
        fs::path const aside = discarded_name(path);
        records_aside +=
            count_records(data.substr(std::min<std::size_t>(segment_header_size, data.size())));
        bytes_aside += data.size();
        fs::rename(path, aside);
        kept.insert(kept.begin(), aside.string());
        r.last_segment.reset();
        r.last_segment_size = 0;
    } else {
        if (!tail) {
            // The cut bytes go to a file of their own before the segment is shortened.
            fs::path const aside = discarded_name(path);
            write_new_file(aside, data.substr(offset));
            records_aside += count_records(data.substr(offset));
            bytes_aside += data.size() - offset;
            kept.insert(kept.begin(), aside.string());
        }
        truncate_file(path, offset);
    }
    if (!tail) {
        r.records_set_aside = records_aside;
        r.bytes_set_aside = bytes_aside;
        std::string files_kept;
        for (std::string const& k : kept) {
            files_kept += (files_kept.empty() ? "" : ", ") + k;
        }
        log.error(
            "write-ahead log: {} in {}: --truncate-corrupt-log given, set aside {} records "
            "({} bytes) from there on, kept in {}; the records before it are recovered",
            end.problem, where, r.records_set_aside, r.bytes_set_aside, files_kept);
    }
}

}  // namespace

recovery_result recover(recovery_options const& options, flow_store& store,
                        idempotency_table& idempotency, spdlog::logger& log) {
    fs::path const& dir = options.dir;
    remove_unfinished_snapshots(dir, log);
    dir_listing const files = list_dir(dir);
    std::optional<synced_position> const marker = read_marker(dir);
    recovery_result r;
    load_newest_snapshot(files, options, store, idempotency, log, r);
    if (r.snapshot.empty() && !files.segments.empty() && files.segments.begin()->first != 1) {
        throw recovery_error("data directory " + dir.string() +
                             ": no usable snapshot, and the log starts at record " +
                             std::to_string(files.segments.begin()->first) +
                             ", not 1; restore a snapshot from backup");
    }

    std::uint64_t expected = r.snapshot_seq + 1;
    for (auto it = files.segments.begin(); it != files.segments.end(); ++it) {
        auto const& [first, path] = *it;
        mapped_file const f{path};
        std::string_view const data = f.bytes();
        segment_end const end =
            replay_segment(first, path, data, expected, options, store, idempotency, r);
        r.last_segment = first;
        r.last_segment_size = end.offset;
        (void)read_segment_header(data, &r.last_segment_version);
        if (end.problem.empty()) {
            continue;
        }
        // Past the last fsynced offset: never durable, cut off. Before it: refuse, unless told.
        bool const tail = !marker || first > marker->segment ||
                          (first == marker->segment && end.offset >= marker->offset);
        std::string const where = path.string() + " at offset " + std::to_string(end.offset);
        if (!tail && !options.truncate_corrupt) {
            throw recovery_error(
                "corrupt write-ahead log: " + end.problem + " in " + where +
                ", before the last synced offset (" + std::to_string(marker->offset) +
                " of segment " + segment_name(marker->segment) +
                "); start with --truncate-corrupt-log to keep the records before it and drop "
                "the rest");
        }
        if (tail) {
            log.warn(
                "write-ahead log: {} in {} ({} bytes past the last synced offset, never "
                "durable): cut off",
                end.problem, where, data.size() - end.offset);
        }
        cut_log(files.segments, it, data, end, tail, where, r, log);
        break;
    }
    if (r.last_segment && r.last_segment_size < segment_header_size) {
        r.last_segment.reset();
    }
    r.next_seq = expected;
    return r;
}

}  // namespace flowd::wal
