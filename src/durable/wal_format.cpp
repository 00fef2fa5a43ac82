#include "flowd/durable/wal_format.hpp"

#include <array>
#include <bit>
#include <cstdio>
#include <cstring>

#include "flowd/durable/crc32c.hpp"

namespace flowd::wal {
namespace {

constexpr std::string_view segment_magic{"FLOWDWAL", 8};
constexpr std::string_view marker_magic{"FLWDSYNC", 8};
// hour, three sizes, three one-byte names, two counters.
constexpr std::size_t min_entry_size = 4 + 3 + 3 + 16;
// hour, three name indices, two counters.
constexpr std::size_t named_entry_size = 4 + 12 + 16;

std::uint32_t frame_crc(std::uint32_t payload_crc, std::uint64_t seq, std::uint32_t size) {
    std::array<unsigned char, 12> tail{};
    for (int i = 0; i < 8; ++i) {
        tail[static_cast<std::size_t>(i)] = static_cast<unsigned char>(seq >> (8 * i));
    }
    for (int i = 0; i < 4; ++i) {
        tail[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(size >> (8 * i));
    }
    return crc32c(payload_crc, tail.data(), tail.size());
}

std::optional<std::uint64_t> parse_hex_name(std::string_view name, std::string_view prefix,
                                            std::string_view suffix) noexcept {
    if (name.size() != prefix.size() + 16 + suffix.size() || !name.starts_with(prefix) ||
        !name.ends_with(suffix)) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : name.substr(prefix.size(), 16)) {
        int d = 0;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else {
            return std::nullopt;
        }
        v = v << 4 | static_cast<std::uint64_t>(d);
    }
    return v;
}

std::string hex_name(std::string_view prefix, std::uint64_t v, std::string_view suffix) {
    std::array<char, 17> hex{};
    std::snprintf(hex.data(), hex.size(), "%016llx", static_cast<unsigned long long>(v));
    return std::string(prefix) + hex.data() + std::string(suffix);
}

}  // namespace

void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}

void put_u32(std::string& out, std::uint32_t v) {
    std::array<char, 4> b{};
    for (std::size_t i = 0; i < 4; ++i) {
        b[i] = static_cast<char>(v >> (8 * i));
    }
    out.append(b.data(), b.size());
}

void put_u64(std::string& out, std::uint64_t v) {
    std::array<char, 8> b{};
    for (std::size_t i = 0; i < 8; ++i) {
        b[i] = static_cast<char>(v >> (8 * i));
    }
    out.append(b.data(), b.size());
}

std::uint8_t reader::u8() noexcept {
    if (!ok_ || remaining() < 1) {
        ok_ = false;
        return 0;
    }
    return static_cast<std::uint8_t>(data_[pos_++]);
}

std::uint32_t reader::u32() noexcept {
    if (!ok_ || remaining() < 4) {
        ok_ = false;
        return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        v |= std::uint32_t{static_cast<unsigned char>(data_[pos_ + i])} << (8 * i);
    }
    pos_ += 4;
    return v;
}

std::uint64_t reader::u64() noexcept {
    if (!ok_ || remaining() < 8) {
        ok_ = false;
        return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) {
        v |= std::uint64_t{static_cast<unsigned char>(data_[pos_ + i])} << (8 * i);
    }
    pos_ += 8;
    return v;
}

std::string_view reader::bytes(std::size_t n) noexcept {
    if (!ok_ || remaining() < n) {
        ok_ = false;
        return {};
    }
    std::string_view const v = data_.substr(pos_, n);
    pos_ += n;
    return v;
}

void put_entry(std::string& out, std::string_view src, std::string_view dest, std::string_view vpc,
               std::uint32_t hour, flow_counters counters) {
    // One append per entry, from a stack buffer: nine appends (each checking capacity) were
    // a visible share of a POST with the write-ahead log. Names are 255 bytes at most (the
    // sizes go in one byte each); + 8 because le() stores whole words.
    constexpr std::size_t most = 4 + 3 + 3 * 255 + 16 + 8;
    std::array<char, most> b;  // NOLINT(cppcoreguidelines-pro-type-member-init): written first
    char* p = b.data();
    // Little-endian on disk: on a little-endian host one store per integer.
    auto le = [&p](std::uint64_t v, std::size_t n) {
        if constexpr (std::endian::native == std::endian::little) {
            std::memcpy(p, &v, 8);  // the buffer has room for 8; only n count
            p += n;
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                *p++ = static_cast<char>(v >> (8 * i));
            }
        }
    };
    auto bytes = [&p](std::string_view s) {
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    };
    // Validated names are 1..255 bytes; a longer one could not be framed, so never overflow.
    src = src.substr(0, 255);
    dest = dest.substr(0, 255);
    vpc = vpc.substr(0, 255);
    le(hour, 4);
    le(src.size(), 1);
    le(dest.size(), 1);
    le(vpc.size(), 1);
    bytes(src);
    bytes(dest);
    bytes(vpc);
    le(counters.bytes_tx, 8);
    le(counters.bytes_rx, 8);
    out.append(b.data(), static_cast<std::size_t>(p - b.data()));
}

bool read_entry(reader& in, flow_batch& batch, std::size_t index) {
    std::uint32_t const hour = in.u32();
    std::uint8_t const ls = in.u8();
    std::uint8_t const ld = in.u8();
    std::uint8_t const lv = in.u8();
    std::string_view const src = in.bytes(ls);
    std::string_view const dest = in.bytes(ld);
    std::string_view const vpc = in.bytes(lv);
    flow_counters c;
    c.bytes_tx = in.u64();
    c.bytes_rx = in.u64();
    if (!in.ok() || ls == 0 || ld == 0 || lv == 0 || hour > max_hour || c.bytes_tx > max_counter ||
        c.bytes_rx > max_counter) {
        return false;
    }
    // Entries of one record or snapshot are distinct keys; a repeat would only add.
    return batch.add(src, dest, vpc, hour, c, index) == flow_batch::add_status::ok;
}

namespace {

void put_named_entries(std::string& b, flow_batch const& batch) {
    put_u32(b, static_cast<std::uint32_t>(batch.names().size()));
    for (std::string_view name : batch.names()) {
        name = name.substr(0, 255);  // validated names are 1..255 bytes
        put_u8(b, static_cast<std::uint8_t>(name.size()));
        b += name;
    }
    put_u32(b, static_cast<std::uint32_t>(batch.entries().size()));
    // Fixed-size entries, written in place: the name bytes are in the table once.
    std::size_t at = b.size();
    b.resize(at + batch.entries().size() * named_entry_size);
    for (batch_entry const& e : batch.entries()) {
        char* p = b.data() + at;
        auto le = [&p](std::uint64_t v, std::size_t n) {
            for (std::size_t i = 0; i < n; ++i) {
                *p++ = static_cast<char>(v >> (8 * i));
            }
        };
        le(e.record.hour, 4);
        le(e.names[0], 4);
        le(e.names[1], 4);
        le(e.names[2], 4);
        le(e.record.counters.bytes_tx, 8);
        le(e.record.counters.bytes_rx, 8);
        at += named_entry_size;
    }
}

bool read_named_entries(reader& in, flow_batch& batch) {
    std::uint32_t const count = in.u32();
    if (!in.ok() || count > in.remaining() / 2) {
        return false;
    }
    std::vector<std::string_view> names;
    names.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint8_t const size = in.u8();
        names.push_back(in.bytes(size));
        if (!in.ok() || size == 0) {
            return false;
        }
    }
    std::uint32_t const entries = in.u32();
    if (!in.ok() || entries > in.remaining() / named_entry_size) {
        return false;
    }
    batch.reserve(entries);
    for (std::uint32_t i = 0; i < entries; ++i) {
        std::uint32_t const hour = in.u32();
        std::uint32_t const src = in.u32();
        std::uint32_t const dest = in.u32();
        std::uint32_t const vpc = in.u32();
        flow_counters c;
        c.bytes_tx = in.u64();
        c.bytes_rx = in.u64();
        if (!in.ok() || src >= count || dest >= count || vpc >= count || hour > max_hour ||
            c.bytes_tx > max_counter || c.bytes_rx > max_counter ||
            batch.add(names[src], names[dest], names[vpc], hour, c, i) !=
                flow_batch::add_status::ok) {
            return false;
        }
    }
    return true;
}

}  // namespace

encoded_payload encode_payload(flow_batch const& batch, idempotency_claim const* idempotency,
                               std::uint64_t accepted_unix_ms, payload_kind kind) {
    encoded_payload out;
    std::string& b = out.bytes;
    std::size_t size = 64;
    if (kind == payload_kind::name_table) {
        size += batch.entries().size() * named_entry_size;
        for (std::string_view name : batch.names()) {
            size += 1 + name.size();
        }
    } else {
        size += batch.entries().size() * min_entry_size;
        for (batch_entry const& e : batch.entries()) {
            size += e.record.src_app.size() + e.record.dest_app.size() + e.record.vpc_id.size();
        }
    }
    b.reserve(size);
    put_u8(b, static_cast<std::uint8_t>(kind));
    put_u64(b, accepted_unix_ms);
    put_u64(b, batch.record_count());
    put_u8(b, idempotency != nullptr ? 1 : 0);
    if (idempotency != nullptr) {
        put_u8(b, static_cast<std::uint8_t>(idempotency->scope.size()));
        b += idempotency->scope;
        put_u8(b, static_cast<std::uint8_t>(idempotency->key.size()));
        b += idempotency->key;
        put_u64(b, idempotency->fingerprint);
    }
    if (kind == payload_kind::name_table) {
        put_named_entries(b, batch);
    } else {
        put_u32(b, static_cast<std::uint32_t>(batch.entries().size()));
        for (batch_entry const& e : batch.entries()) {
            put_entry(b, e.record.src_app, e.record.dest_app, e.record.vpc_id, e.record.hour,
                      e.record.counters);
        }
    }
    out.crc = crc32c(0, b);
    return out;
}

std::optional<log_record> decode_payload(std::string_view payload) {
    reader in{payload};
    log_record r;
    auto const kind = static_cast<payload_kind>(in.u8());
    if (kind != payload_kind::inline_names && kind != payload_kind::name_table) {
        return std::nullopt;
    }
    r.accepted_unix_ms = in.u64();
    std::uint64_t const records = in.u64();
    std::uint8_t const has_key = in.u8();
    if (has_key > 1) {
        return std::nullopt;
    }
    if (has_key == 1) {
        idempotency_claim c;
        c.scope = std::string(in.bytes(in.u8()));
        c.key = std::string(in.bytes(in.u8()));
        c.fingerprint = in.u64();
        r.idempotency = std::move(c);
    }
    if (kind == payload_kind::name_table) {
        if (!read_named_entries(in, r.batch)) {
            return std::nullopt;
        }
    } else {
        std::uint32_t const entries = in.u32();
        if (!in.ok() || entries > in.remaining() / min_entry_size) {
            return std::nullopt;
        }
        r.batch.reserve(entries);
        for (std::uint32_t i = 0; i < entries; ++i) {
            if (!read_entry(in, r.batch, i)) {
                return std::nullopt;
            }
        }
    }
    if (in.remaining() != 0 || records < r.batch.entries().size()) {
        return std::nullopt;
    }
    r.batch.set_record_count(records);
    return r;
}

std::array<char, frame_header_size> frame_header(std::uint64_t seq, std::uint32_t size,
                                                 std::uint32_t payload_crc) {
    std::array<char, frame_header_size> out{};
    auto le = [&out](std::size_t at, std::uint64_t v, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            out[at + i] = static_cast<char>(v >> (8 * i));
        }
    };
    le(0, size, 4);
    le(4, frame_crc(payload_crc, seq, size), 4);
    le(8, seq, 8);
    return out;
}

void append_frame(std::string& out, std::uint64_t seq, std::string_view payload,
                  std::uint32_t payload_crc) {
    auto const h = frame_header(seq, static_cast<std::uint32_t>(payload.size()), payload_crc);
    out.append(h.data(), h.size());
    out += payload;
}

frame read_frame(std::string_view data) noexcept {
    frame f;
    if (data.size() < frame_header_size) {
        f.what = frame::status::incomplete;
        return f;
    }
    reader in{data};
    std::uint32_t const size = in.u32();
    std::uint32_t const crc = in.u32();
    std::uint64_t const seq = in.u64();
    if (size == 0 || size > max_payload_size) {
        f.what = frame::status::corrupt;
        return f;
    }
    if (data.size() - frame_header_size < size) {
        f.what = frame::status::incomplete;
        return f;
    }
    std::string_view const payload = data.substr(frame_header_size, size);
    if (frame_crc(crc32c(0, payload), seq, size) != crc) {
        f.what = frame::status::corrupt;
        return f;
    }
    f.what = frame::status::ok;
    f.seq = seq;
    f.payload = payload;
    f.size = frame_header_size + size;
    return f;
}

std::string segment_header(std::uint64_t first_seq) {
    std::string h(segment_magic);
    put_u32(h, segment_version);
    put_u32(h, static_cast<std::uint32_t>(segment_header_size));
    put_u64(h, first_seq);
    put_u32(h, 0);
    put_u32(h, crc32c(0, h));
    return h;
}

std::optional<std::uint64_t> read_segment_header(std::string_view data,
                                                 std::uint32_t* version_out) noexcept {
    if (data.size() < segment_header_size || data.substr(0, 8) != segment_magic) {
        return std::nullopt;
    }
    reader in{data.substr(8)};
    std::uint32_t const version = in.u32();
    std::uint32_t const size = in.u32();
    std::uint64_t const first = in.u64();
    (void)in.u32();
    std::uint32_t const crc = in.u32();
    if (version < oldest_segment_version || version > segment_version ||
        size != segment_header_size || crc != crc32c(0, data.substr(0, segment_header_size - 4))) {
        return std::nullopt;
    }
    if (version_out != nullptr) {
        *version_out = version;
    }
    return first;
}

std::string segment_name(std::uint64_t first_seq) {
    return hex_name("wal-", first_seq, ".log");
}

std::string snapshot_name(std::uint64_t covered_seq) {
    return hex_name("snapshot-", covered_seq, ".snap");
}

std::optional<std::uint64_t> parse_segment_name(std::string_view name) noexcept {
    return parse_hex_name(name, "wal-", ".log");
}

std::optional<std::uint64_t> parse_snapshot_name(std::string_view name) noexcept {
    return parse_hex_name(name, "snapshot-", ".snap");
}

std::string marker_slot(std::uint64_t generation, synced_position p) {
    std::string s(marker_magic);
    put_u64(s, generation);
    put_u64(s, p.segment);
    put_u32(s, static_cast<std::uint32_t>(p.offset));
    put_u32(s, crc32c(0, s));
    return s;
}

std::optional<std::pair<std::uint64_t, synced_position>> read_marker_slot(
    std::string_view slot) noexcept {
    if (slot.size() < marker_slot_size || slot.substr(0, 8) != marker_magic) {
        return std::nullopt;
    }
    reader in{slot.substr(8)};
    std::uint64_t const generation = in.u64();
    std::uint64_t const segment = in.u64();
    std::uint32_t const offset = in.u32();
    std::uint32_t const crc = in.u32();
    if (crc != crc32c(0, slot.substr(0, marker_slot_size - 4))) {
        return std::nullopt;
    }
    return std::make_pair(generation, synced_position{segment, offset});
}

}  // namespace flowd::wal
