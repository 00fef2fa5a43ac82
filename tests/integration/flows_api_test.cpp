#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

TEST(FlowsApiTest, SeedExampleRoundTrip) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto posted = client.post("/flows", seed_batch());
    auto hour1 = client.get("/flows?hour=1");
    auto hour2 = client.get("/flows?hour=2");
    auto hour3 = client.get("/flows?hour=3");

    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_EQ(posted.body(), R"({"accepted":5})");
    EXPECT_EQ(hour1.body(),
              R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},)"
              R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}])");
    EXPECT_EQ(hour2.body(),
              R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},)"
              R"({"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])");
    EXPECT_EQ(hour3.body(), "[]");
}

}  // namespace
}  // namespace flowd::test
