#include "nats_support.hpp"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "flowd/cluster/cluster_ingest.hpp"

namespace flowd {
namespace {

using namespace cluster_detail;  // NOLINT(google-build-using-namespace): the helpers under test

TEST(NatsSupportTest, FailuresARepublishMayCureAreRetriable) {
    for (natsStatus s :
         {NATS_NO_RESPONDERS, NATS_TIMEOUT, NATS_CONNECTION_CLOSED, NATS_CONNECTION_DISCONNECTED,
          NATS_NOT_YET_CONNECTED, NATS_NO_SERVER, NATS_STALE_CONNECTION, NATS_IO_ERROR}) {
        EXPECT_TRUE(retriable(s, static_cast<jsErrCode>(0))) << natsStatus_GetText(s);
    }
    for (jsErrCode code :
         {JSClusterNotAvailErr, JSClusterNotLeaderErr, JSClusterNoPeersErr, JSStreamOfflineErr}) {
        EXPECT_TRUE(retriable(NATS_ERR, code)) << static_cast<int>(code);
    }
}

TEST(NatsSupportTest, FailuresTheStreamWouldRepeatAreFinal) {
    EXPECT_FALSE(retriable(NATS_MAX_PAYLOAD, static_cast<jsErrCode>(0)));
    EXPECT_FALSE(retriable(NATS_ERR, static_cast<jsErrCode>(0)));
    EXPECT_FALSE(retriable(NATS_ERR, JSStreamNotFoundErr));
    EXPECT_FALSE(retriable(NATS_NOT_FOUND, JSStreamNotFoundErr));
}

TEST(NatsSupportTest, OnlyALeaderOrAnUnclusteredStreamSpeaksForTheStream) {
    jsStreamInfo si{};
    EXPECT_TRUE(leader_answered(&si));  // one server, no cluster block

    jsClusterInfo cluster{};
    si.Cluster = &cluster;
    EXPECT_FALSE(leader_answered(&si));  // a replica's own copy while none leads
    std::string empty;
    cluster.Leader = empty.data();
    EXPECT_FALSE(leader_answered(&si));
    std::string name = "n1";
    cluster.Leader = name.data();
    EXPECT_TRUE(leader_answered(&si));
}

TEST(NatsSupportTest, StatusTextQuotesTheLastErrorOnlyWhenItIsTheStatusOwn) {
    // Leaves an "invalid argument" as this thread's last error, as any failed call does.
    ASSERT_EQ(jsOptions_Init(nullptr), NATS_INVALID_ARG);
    std::string const own = status_text(NATS_INVALID_ARG);
    EXPECT_EQ(own.rfind(natsStatus_GetText(NATS_INVALID_ARG), 0), 0U) << own;
    EXPECT_NE(own.find(" ("), std::string::npos) << own;
    // A later timeout is not explained by it.
    EXPECT_EQ(status_text(NATS_TIMEOUT), natsStatus_GetText(NATS_TIMEOUT));
}

TEST(NatsSupportTest, CheckThrowsWhatFailedAndPassesOk) {
    EXPECT_NO_THROW(check(NATS_OK, "connect"));
    try {
        check(NATS_NO_SERVER, "connect");
        FAIL() << "no exception";
    } catch (std::runtime_error const& e) {
        EXPECT_EQ(std::string(e.what()).rfind("cluster: connect: ", 0), 0U) << e.what();
    }
}

TEST(NatsSupportTest, ClusterUnavailableCarriesTheDetail) {
    problem const p = cluster_unavailable("no leader");
    EXPECT_EQ(p.type, problem_type::cluster_unavailable);
    EXPECT_EQ(p.detail, "no leader");
    EXPECT_FALSE(p.record.has_value());
}

TEST(ClusterSubjectTest, OneSubjectPerStream) {
    EXPECT_EQ(cluster_subject("FLOWS"), "flowd.FLOWS.batches");
    EXPECT_NE(cluster_subject("A"), cluster_subject("B"));
}

}  // namespace
}  // namespace flowd
