#include "flowd/http/framing.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace flowd {
namespace {

std::string head(std::string_view request_line, std::vector<std::string> const& fields) {
    std::string out(request_line);
    out += "\r\n";
    for (std::string const& f : fields) {
        out += f + "\r\n";
    }
    return out + "\r\n";
}

struct framing_case {
    std::string name;
    std::string head;
    unsigned status;  // 0: accepted
};

// SPEC Others and the public desync research (TE variants, CL forms, Host).
std::vector<framing_case> const cases{
    {"plain GET", head("GET /flows?hour=1 HTTP/1.1", {"Host: x"}), 0},
    {"chunked", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: chunked"}), 0},
    {"chunked upper case", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: CHUNKED"}),
     0},
    {"chunked mixed case, OWS",
     head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: \t ChUnKeD \t"}), 0},
    {"TE on GET", head("GET /flows?hour=1 HTTP/1.1", {"Host: x", "Transfer-Encoding: chunked"}), 0},
    {"chunked, chunked",
     head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: chunked, chunked"}), 400},
    {"two chunked fields",
     head("POST /flows HTTP/1.1",
          {"Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"}),
     400},
    {"xchunked", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: xchunked"}), 501},
    {"foo", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: foo"}), 501},
    {"identity", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: identity"}), 501},
    {"gzip, chunked", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: gzip, chunked"}),
     501},
    {"chunked then foo field",
     head("POST /flows HTTP/1.1",
          {"Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: foo"}),
     501},
    {"empty TE", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding:"}), 400},
    {"leading comma", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: ,chunked"}),
     400},
    {"trailing comma", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: chunked,"}),
     400},
    {"inner space", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: chun ked"}), 400},
    {"quoted", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: \"chunked\""}), 400},
    {"parameter", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: chunked;a=b"}), 400},
    {"TE with HTTP/1.0", head("POST /flows HTTP/1.0", {"Transfer-Encoding: chunked"}), 400},
    {"TE and CL",
     head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: 5", "Transfer-Encoding: chunked"}),
     400},
    {"CL and TE foo",
     head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: foo", "Content-Length: 5"}), 400},
    {"obs-fold", head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: foo", " chunked"}),
     400},
    {"obs-fold tab", head("GET / HTTP/1.1", {"Host: x", "X-A: a", "\tb"}), 400},
    {"CL leading zeros", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: 0005"}), 0},
    {"CL plus", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: +5"}), 400},
    {"CL inner space", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: 1 0"}), 400},
    {"CL minus", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: -1"}), 400},
    {"CL hex", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length: 0x10"}), 400},
    {"CL empty", head("POST /flows HTTP/1.1", {"Host: x", "Content-Length:"}), 400},
    {"no Host 1.1", head("GET /healthz HTTP/1.1", {}), 400},
    {"two Hosts 1.1", head("GET /healthz HTTP/1.1", {"Host: a", "Host: b"}), 400},
    {"host case", head("GET /healthz HTTP/1.1", {"hOsT: a"}), 0},
    {"no Host 1.0", head("GET /healthz HTTP/1.0", {}), 0},
};

TEST(FramingTest, EveryCaseOfTheTable) {
    for (framing_case const& c : cases) {
        SCOPED_TRACE(c.name);

        auto const p = audit_framing(c.head);

        if (c.status == 0) {
            EXPECT_FALSE(p.has_value()) << (p ? p->detail : "");
        } else {
            ASSERT_TRUE(p.has_value());
            EXPECT_EQ(status_of(p->type), c.status) << p->detail;
        }
    }
}

TEST(FramingTest, UnknownCodingIsNotImplemented) {
    auto const p =
        audit_framing(head("POST /flows HTTP/1.1", {"Host: x", "Transfer-Encoding: xchunked"}));

    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->type, problem_type::not_implemented);
    EXPECT_NE(p->detail.find("xchunked"), std::string::npos);
}

TEST(FramingTest, HeadEndCountsEveryByteThroughTheBlankLine) {
    std::string const h = head("GET / HTTP/1.1", {"Host: x"});  // 29 bytes

    EXPECT_EQ(find_head_end(h, h.size()).what, head_end::state::complete);
    EXPECT_EQ(find_head_end(h, h.size()).size, h.size());
    EXPECT_EQ(find_head_end(h, h.size() - 1).what, head_end::state::too_large);
    EXPECT_EQ(find_head_end(h.substr(0, h.size() - 1), h.size()).what, head_end::state::need_more);
}

TEST(FramingTest, ManyShortLinesCountAsTheirBytes) {
    // 5,000 `a:` lines: each small, together far over the limit.
    std::vector<std::string> fields{"Host: x"};
    for (int i = 0; i < 5000; ++i) {
        fields.emplace_back("a:");
    }
    std::string const h = head("GET / HTTP/1.1", fields);

    EXPECT_EQ(find_head_end(h, 16384).what, head_end::state::too_large);
    EXPECT_EQ(find_head_end(h, h.size()).what, head_end::state::complete);
}

TEST(FramingTest, BodyBytesAfterTheHeadAreNotCounted) {
    std::string const h = head("POST / HTTP/1.1", {"Host: x", "Content-Length: 100"});
    std::string const with_body = h + std::string(100, 'x');

    head_end const end = find_head_end(with_body, h.size());

    EXPECT_EQ(end.what, head_end::state::complete);
    EXPECT_EQ(end.size, h.size());
}

TEST(FramingTest, BareLineFeedGoesToTheParser) {
    EXPECT_EQ(find_head_end("GET / HTTP/1.1\nHost: x\n\n", 1024).what, head_end::state::malformed);
}

}  // namespace
}  // namespace flowd
