#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/domain/flow_batch.hpp"
#include "flowd/store/idempotency_table.hpp"

// The on-disk formats of the data directory, all little-endian:
//
// Log segment  wal-<first seq, 16 hex>.log
//   header  32 bytes: "FLOWDWAL" | u32 version | u32 header size | u64 first seq | u32 0 |
//           u32 CRC-32C of the 28 bytes before it
//   frames  u32 payload size | u32 CRC-32C of (payload, seq, payload size) | u64 seq | payload
//   payload u8 kind | u64 accepted unix ms | u64 records | u8 has key |
//           [u8 scope size | scope | u8 key size | key | u64 body fingerprint] |
//           kind 1 (a batch, each entry with its names; the only kind of version 1):
//             u32 entries | entries
//           kind 2 (a batch with a name table, from version 2; each distinct name once):
//             u32 names | names x (u8 size | name) | u32 entries | entries x named entry
//   entry   u32 hour | u8 src size | u8 dest size | u8 vpc size | src | dest | vpc |
//           u64 bytes_tx | u64 bytes_rx
//   named entry  u32 hour | u32 src | u32 dest | u32 vpc (indices into the name table) |
//           u64 bytes_tx | u64 bytes_rx
// A segment of version 2 holds either kind; one of version 1 only kind 1 (flowd goes on in
// a new segment rather than append to an older version's). Cluster mode's stream messages
// are the same payloads, of kind 1 (see cluster_publish.cpp).
//
// Snapshot     snapshot-<covered seq, 16 hex>.snap (written as .tmp, then renamed)
//   header  "FLOWDSNP" | u32 version | u32 0 | u64 covered seq | u64 created unix ms |
//           u64 keys | u64 idempotency keys
//   body    keys x entry | idempotency keys x (u8 scope size | scope | u8 key size | key |
//           u64 fingerprint | u64 accepted | u64 accepted unix ms)
//   trailer u32 CRC-32C of everything before it | "FLOWDEND"
//
// Synced marker  wal.synced: two 32-byte slots at offsets 0 and 4096, written in turn:
//   "FLWDSYNC" | u64 generation | u64 segment first seq | u32 offset | u32 CRC-32C of the
//   28 bytes before it. The valid slot of the higher generation names the log end known
//   to be fsynced.
namespace flowd::wal {

// The version new log segments are written in; recovery reads every version from
// oldest_segment_version on (tests/data/datadir-v<N> holds a directory of each release).
inline constexpr std::uint32_t segment_version = 2;
inline constexpr std::uint32_t oldest_segment_version = 1;
inline constexpr std::uint32_t snapshot_version = 1;
inline constexpr std::size_t segment_header_size = 32;
inline constexpr std::size_t frame_header_size = 16;
// A payload larger than this is corrupt: a batch is at most max_body_bytes of JSON, and
// each record's binary form is smaller than its JSON.
inline constexpr std::uint32_t max_payload_size = 1U << 31;
inline constexpr std::size_t marker_slot_size = 32;
inline constexpr std::size_t marker_slot_stride = 4096;

// One accepted batch as the log keeps it.
struct log_record {
    std::uint64_t accepted_unix_ms = 0;
    std::optional<idempotency_claim> idempotency;
    flow_batch batch;
};

// Little-endian appends.
void put_u8(std::string& out, std::uint8_t v);
void put_u32(std::string& out, std::uint32_t v);
void put_u64(std::string& out, std::uint64_t v);

// Bounds-checked little-endian reads over a byte range; any read past the end sets ok() to
// false and returns zeros. Plain value type.
class reader {
public:
    explicit reader(std::string_view data) noexcept : data_(data) {}
    std::uint8_t u8() noexcept;
    std::uint32_t u32() noexcept;
    std::uint64_t u64() noexcept;
    std::string_view bytes(std::size_t n) noexcept;
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] std::size_t offset() const noexcept { return pos_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }

private:
    std::string_view data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

void put_entry(std::string& out, std::string_view src, std::string_view dest, std::string_view vpc,
               std::uint32_t hour, flow_counters counters);
// Reads one entry into `batch` (as record `index`); false when malformed.
bool read_entry(reader& in, flow_batch& batch, std::size_t index);

// A record's payload, and its CRC so far (the writer extends it with the seq and size).
struct encoded_payload {
    std::string bytes;
    std::uint32_t crc = 0;
};
enum class payload_kind : std::uint8_t { inline_names = 1, name_table = 2 };
[[nodiscard]] encoded_payload encode_payload(flow_batch const& batch,
                                             idempotency_claim const* idempotency,
                                             std::uint64_t accepted_unix_ms,
                                             payload_kind kind = payload_kind::name_table);
[[nodiscard]] std::optional<log_record> decode_payload(std::string_view payload);

// The header of a frame for a payload of `size` bytes (crc = encoded_payload::crc) as
// record `seq`.
[[nodiscard]] std::array<char, frame_header_size> frame_header(std::uint64_t seq,
                                                               std::uint32_t size,
                                                               std::uint32_t payload_crc);
// Appends a whole frame for `payload` (crc = encoded_payload::crc) as record `seq`.
void append_frame(std::string& out, std::uint64_t seq, std::string_view payload,
                  std::uint32_t payload_crc);

struct frame {
    enum class status { ok, incomplete, corrupt };
    status what = status::corrupt;
    std::uint64_t seq = 0;
    std::string_view payload;
    std::size_t size = 0;  // header plus payload, when ok
};
// Reads the frame at the start of `data` (the rest of a segment from some offset).
[[nodiscard]] frame read_frame(std::string_view data) noexcept;

[[nodiscard]] std::string segment_header(std::uint64_t first_seq);
// The first seq a segment header names, or nothing when it is not a valid header (or of a
// version this flowd does not read); `version`, when given, gets the header's version.
[[nodiscard]] std::optional<std::uint64_t> read_segment_header(
    std::string_view data, std::uint32_t* version = nullptr) noexcept;

[[nodiscard]] std::string segment_name(std::uint64_t first_seq);
[[nodiscard]] std::string snapshot_name(std::uint64_t covered_seq);
// The number in a segment or snapshot file name, or nothing for other names.
[[nodiscard]] std::optional<std::uint64_t> parse_segment_name(std::string_view name) noexcept;
[[nodiscard]] std::optional<std::uint64_t> parse_snapshot_name(std::string_view name) noexcept;

struct synced_position {
    std::uint64_t segment = 0;  // first seq of the segment
    std::uint64_t offset = 0;   // bytes of it known to be fsynced
    friend bool operator==(synced_position const&, synced_position const&) = default;
};
[[nodiscard]] std::string marker_slot(std::uint64_t generation, synced_position p);
// The generation and position of a slot, or nothing when the slot is not valid.
[[nodiscard]] std::optional<std::pair<std::uint64_t, synced_position>> read_marker_slot(
    std::string_view slot) noexcept;

}  // namespace flowd::wal
