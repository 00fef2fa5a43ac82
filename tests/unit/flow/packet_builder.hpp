#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

// Byte-by-byte builders of NetFlow v5/v9 and IPFIX datagrams for the tests: nothing here
// knows the decoder, so a test that agrees with it agrees with the RFCs' layouts.
namespace flowd::test {

struct bytes {
    std::vector<std::uint8_t> b;

    bytes& u8(unsigned v) {
        b.push_back(static_cast<std::uint8_t>(v));
        return *this;
    }
    bytes& u16(unsigned v) { return u8(v >> 8).u8(v); }
    bytes& u32(std::uint32_t v) { return u16(v >> 16).u16(v & 0xffffU); }
    bytes& u64(std::uint64_t v) {
        return u32(static_cast<std::uint32_t>(v >> 32)).u32(static_cast<std::uint32_t>(v));
    }
    bytes& ipv4(unsigned a, unsigned b2, unsigned c, unsigned d) {
        return u8(a).u8(b2).u8(c).u8(d);
    }
    bytes& raw(std::vector<std::uint8_t> const& v) {
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    [[nodiscard]] std::size_t size() const { return b.size(); }
};

// A set: id, length (header included), body.
inline bytes set(unsigned id, bytes const& body) {
    bytes s;
    s.u16(id).u16(static_cast<unsigned>(body.size() + 4)).raw(body.b);
    return s;
}

// NetFlow v9 header plus sets (count: number of records, informational).
inline bytes v9(std::uint32_t uptime_ms, std::uint32_t unix_secs, std::uint32_t sequence,
                std::uint32_t source_id, std::initializer_list<bytes> sets, unsigned count = 1) {
    bytes p;
    p.u16(9).u16(count).u32(uptime_ms).u32(unix_secs).u32(sequence).u32(source_id);
    for (bytes const& s : sets) {
        p.raw(s.b);
    }
    return p;
}

// IPFIX message header plus sets; the length is filled in.
inline bytes ipfix(std::uint32_t export_secs, std::uint32_t sequence, std::uint32_t domain,
                   std::initializer_list<bytes> sets) {
    bytes body;
    for (bytes const& s : sets) {
        body.raw(s.b);
    }
    bytes p;
    p.u16(10)
        .u16(static_cast<unsigned>(body.size() + 16))
        .u32(export_secs)
        .u32(sequence)
        .u32(domain);
    p.raw(body.b);
    return p;
}

// One NetFlow v5 record (48 bytes).
struct v5_record {
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::uint32_t octets = 0;
    std::uint32_t first = 0;
    std::uint32_t last = 0;
};

inline bytes v5(std::uint32_t uptime_ms, std::uint32_t unix_secs, std::uint32_t sequence,
                unsigned engine_id, unsigned sampling, std::vector<v5_record> const& records) {
    bytes p;
    p.u16(5).u16(static_cast<unsigned>(records.size())).u32(uptime_ms).u32(unix_secs).u32(0);
    p.u32(sequence).u8(0).u8(engine_id).u16(sampling);
    for (v5_record const& r : records) {
        p.u32(r.src).u32(r.dst).u32(0).u16(1).u16(2).u32(3).u32(r.octets).u32(r.first).u32(r.last);
        p.u16(1234).u16(80).u8(0).u8(0).u8(6).u8(0).u16(0).u16(0).u8(24).u8(24).u16(0);
    }
    return p;
}

}  // namespace flowd::test
