// Keeps docs/openapi.yaml true: every (path, method, status) it documents has a recipe
// here that makes a real flowd answer that status, every recipe is documented, and every
// route the server registers is in the document.

#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "server_fixture.hpp"

namespace {

using flowd::test::flowd_process;
using flowd::test::http_client;
using flowd::test::http_response;
using json = nlohmann::json;

std::string const source_dir = FLOWD_SOURCE_DIR;

// The YAML tree as JSON (every scalar a string), so $refs resolve with JSON pointers.
json to_json(YAML::Node const& n) {
    switch (n.Type()) {
        case YAML::NodeType::Map: {
            json o = json::object();
            for (auto const& kv : n) {
                o[kv.first.as<std::string>()] = to_json(kv.second);
            }
            return o;
        }
        case YAML::NodeType::Sequence: {
            json a = json::array();
            for (auto const& v : n) {
                a.push_back(to_json(v));
            }
            return a;
        }
        case YAML::NodeType::Scalar:
            return n.Scalar();
        default:
            return nullptr;
    }
}

json const& openapi() {
    static json const doc = to_json(YAML::LoadFile(source_dir + "/docs/openapi.yaml"));
    return doc;
}

// Follows local references ("#/components/...") to the object they name.
json const& deref(json const& node) {
    json const* cur = &node;
    for (int hops = 0; cur->is_object() && cur->contains("$ref"); ++hops) {
        std::string const ref = cur->at("$ref").get<std::string>();
        if (hops > 8 || ref.rfind("#/", 0) != 0) {
            throw std::runtime_error("unresolvable $ref " + ref);
        }
        cur = &openapi().at(json::json_pointer(ref.substr(1)));
    }
    return *cur;
}

std::vector<std::string> const http_methods{"get",     "put",  "post",  "delete",
                                            "options", "head", "patch", "trace"};

std::string upper(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return s;
}

std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// "POST /flows 413" for each documented operation status, "unrouted 404" for the answers
// outside any route; each mapped to its (dereferenced) response object.
std::map<std::string, json> documented_responses() {
    std::map<std::string, json> out;
    for (auto const& [path, item] : openapi().at("paths").items()) {
        for (std::string const& m : http_methods) {
            if (!item.contains(m)) {
                continue;
            }
            for (auto const& [status, resp] : item.at(m).at("responses").items()) {
                out[upper(m) + " " + path + " " + status] = deref(resp);
            }
        }
    }
    for (auto const& [status, resp] : openapi().at("x-flowd-unrouted-responses").items()) {
        out["unrouted " + status] = deref(resp);
    }
    return out;
}

// ---- recipes --------------------------------------------------------------------

struct recipe {
    std::string how;  // shown when the answer disagrees with the document
    std::function<http_response(flowd_process& shared)> run;
};

std::string raw_request(std::string const& method, std::string const& target,
                        std::string const& headers = "", std::string const& body = "") {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers;
    if (!body.empty()) {
        r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    return r + "\r\n" + body;
}

http_response send_raw(flowd_process const& p, std::string const& bytes) {
    http_client c(p.port());
    return c.raw(bytes, 1).at(0);
}

void wait_for_log(flowd_process const& p, std::string const& text) {
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (p.log().find(text) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("flowd never logged '" + text + "': " + p.log());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// POST headers announcing a 2-byte body with Expect: 100-continue. flowd answers 100
// Continue once it has read them: from then on the request is in flight, so a drain waits
// for it and leaves its connection open.
std::string const held_post =
    raw_request("POST", "/flows",
                "Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n");

// A fresh flowd, made to drain while `request` arrives on an open connection.
http_response while_draining(std::string const& request) {
    flowd_process p;
    // Two held requests: the drain ends when none is in flight, so `holder` keeps flowd
    // up while `carrier`'s first request is answered and its next one is read.
    http_client holder(p.port());
    http_client carrier(p.port());
    EXPECT_EQ(holder.raw(held_post, 1).at(0).result_int(), 100U);
    EXPECT_EQ(carrier.raw(held_post, 1).at(0).result_int(), 100U);
    p.signal(SIGTERM);
    wait_for_log(p, "shutdown requested");

    auto const answers = carrier.raw("[]" + request, 2);
    auto const last = holder.raw("[]", 1);

    EXPECT_EQ(answers.at(0).result_int(), 200U) << answers.at(0);
    EXPECT_EQ(last.at(0).result_int(), 200U) << last.at(0);
    EXPECT_EQ(p.wait_exit(), 0);
    return answers.at(1);
}

std::string const overflow_batch =
    R"([{"src_app":"o","dest_app":"o","vpc_id":"o","bytes_tx":9223372036854775807,"bytes_rx":0,"hour":1},)"
    R"({"src_app":"o","dest_app":"o","vpc_id":"o","bytes_tx":1,"bytes_rx":0,"hour":1}])";

// `flowd token create` for `scopes`: {token, tokens-file line}.
std::pair<std::string, std::string> create_token(std::string const& scopes) {
    auto const r =
        flowd::test::run_flowd({"token", "create", "--name", "openapi", "--scopes", scopes});
    std::size_t const nl = r.out.find('\n');
    if (r.exit_code != 0 || nl == std::string::npos) {
        throw std::runtime_error("flowd token create failed: " + r.err);
    }
    return {r.out.substr(0, nl), r.out.substr(nl + 1)};
}

// A request to a flowd with a tokens file: none (`scopes` empty) or a token with `scopes`.
http_response with_tokens(std::string const& method, std::string const& scopes) {
    auto const [token, line] = create_token("read");
    flowd::test::temp_dir dir;
    flowd_process p({"--tokens-file", dir.write("tokens", line)});
    std::map<std::string, std::string> headers;
    if (!scopes.empty()) {
        headers["Authorization"] = "Bearer " + token;
    }
    http_client c(p.port());
    return method == "POST" ? c.post("/flows", "[]", "application/json", headers)
                            : c.get("/flows?hour=1", headers);
}

// GETs `target`, then GETs it again with If-None-Match: the first answer's ETag.
http_response revalidated(flowd_process& p, std::string const& target) {
    http_client c(p.port());
    http_response const first = c.get(target);
    return c.get(target, {{"If-None-Match", std::string(first["ETag"])}});
}

// Waits (bounded) until flowd reports `n` open streams in /metrics.
void wait_streams_open(flowd_process const& p, double n) {
    bool const opened = flowd::test::eventually([&] {
        auto const v = flowd::test::metric_value(
            flowd::test::parse_metrics(http_client(p.port()).get("/metrics").body()),
            "flowd_streams_open", {});
        return v && *v == n;
    });
    if (!opened) {
        throw std::runtime_error("flowd_streams_open never reached " + std::to_string(n));
    }
}

std::map<std::string, recipe> recipes() {
    std::map<std::string, recipe> r;
    for (std::string const method : {"POST", "GET"}) {
        r[method + " /flows 401"] = {method + " /flows without a token to a flowd with tokens_file",
                                     [method](flowd_process&) { return with_tokens(method, ""); }};
    }
    r["POST /flows 403"] = {"POST /flows with a read-only token",
                            [](flowd_process&) { return with_tokens("POST", "read"); }};
    r["GET /flows 403"] = {"GET /flows with a write-only token", [](flowd_process&) {
                               auto const [token, line] = create_token("write");
                               flowd::test::temp_dir dir;
                               flowd_process p({"--tokens-file", dir.write("tokens", line)});
                               return http_client(p.port()).get(
                                   "/flows?hour=1", {{"Authorization", "Bearer " + token}});
                           }};
    r["POST /flows 429"] = {
        "POST the seed batch (5 records) twice to a flowd with 1 record/s, burst 1",
        [](flowd_process&) {
            flowd_process p({}, {{"FLOWD_RATE_LIMIT_RECORDS_PER_SECOND", "1"},
                                 {"FLOWD_RATE_LIMIT_RECORDS_BURST", "1"}});
            http_client c(p.port());
            // The first passes on a full bucket and owes 4 records: 4 s before the next.
            (void)c.post("/flows", flowd::test::seed_batch());
            return c.post("/flows", flowd::test::seed_batch());
        }};
    r["GET /flows 429"] = {"GET /flows until refused, on a flowd with 1 request/s, burst 1",
                           [](flowd_process&) {
                               flowd_process p({}, {{"FLOWD_RATE_LIMIT_REQUESTS_PER_SECOND", "1"},
                                                    {"FLOWD_RATE_LIMIT_REQUESTS_BURST", "1"}});
                               http_client c(p.port());
                               http_response last = c.get("/flows?hour=1");
                               for (int i = 0; i < 20 && last.result_int() != 429; ++i) {
                                   last = c.get("/flows?hour=1");
                               }
                               return last;
                           }};
    r["POST /flows 200"] = {"POST the SPEC's seed batch", [](flowd_process& p) {
                                return http_client(p.port()).post("/flows",
                                                                  flowd::test::seed_batch());
                            }};
    r["POST /flows 400"] = {"POST a JSON object instead of an array", [](flowd_process& p) {
                                return http_client(p.port()).post("/flows", "{}");
                            }};
    r["POST /flows 413"] = {
        "POST the seed batch to a flowd with FLOWD_MAX_BODY_BYTES=100", [](flowd_process&) {
            flowd_process small({}, {{"FLOWD_MAX_BODY_BYTES", "100"}});
            return http_client(small.port()).post("/flows", flowd::test::seed_batch());
        }};
    r["POST /flows 415"] = {"POST [] as text/plain", [](flowd_process& p) {
                                return http_client(p.port()).post("/flows", "[]", "text/plain");
                            }};
    r["POST /flows 422"] = {
        "POST two records whose bytes_tx sum passes 2^63-1",
        [](flowd_process& p) { return http_client(p.port()).post("/flows", overflow_batch); }};
    r["POST /flows 507"] = {
        "POST the seed batch (4 keys) to a flowd with FLOWD_MAX_KEYS=1", [](flowd_process&) {
            flowd_process tiny({}, {{"FLOWD_MAX_KEYS", "1"}});
            return http_client(tiny.port()).post("/flows", flowd::test::seed_batch());
        }};
    r["GET /flows 200"] = {"GET /flows?hour=1", [](flowd_process& p) {
                               return http_client(p.port()).get("/flows?hour=1");
                           }};
    r["GET /flows 400"] = {"GET /flows without hour",
                           [](flowd_process& p) { return http_client(p.port()).get("/flows"); }};
    r["GET /flows 304"] = {"GET /flows?hour=1 again with If-None-Match: its ETag",
                           [](flowd_process& p) { return revalidated(p, "/flows?hour=1"); }};
    r["GET /flows 422"] = {"GET /flows?from=0&to=745", [](flowd_process& p) {
                               return http_client(p.port()).get("/flows?from=0&to=745");
                           }};
    r["GET /flows/summary 200"] = {
        "GET /flows/summary?from=0&to=24",
        [](flowd_process& p) { return http_client(p.port()).get("/flows/summary?from=0&to=24"); }};
    r["GET /flows/summary 304"] = {
        "GET /flows/summary?from=0&to=24 again with If-None-Match: its ETag",
        [](flowd_process& p) { return revalidated(p, "/flows/summary?from=0&to=24"); }};
    r["GET /flows/summary 400"] = {
        "GET /flows/summary?from=0&to=24&group_by=hour", [](flowd_process& p) {
            return http_client(p.port()).get("/flows/summary?from=0&to=24&group_by=hour");
        }};
    r["GET /flows/summary 422"] = {
        "GET /flows/summary?from=0&to=745",
        [](flowd_process& p) { return http_client(p.port()).get("/flows/summary?from=0&to=745"); }};
    r["GET /flow-exporters 200"] = {"GET /flow-exporters", [](flowd_process& p) {
                                        return http_client(p.port()).get("/flow-exporters");
                                    }};
    r["GET /hours 200"] = {"GET /hours",
                           [](flowd_process& p) { return http_client(p.port()).get("/hours"); }};
    r["GET /hours 304"] = {"GET /hours again with If-None-Match: its ETag",
                           [](flowd_process& p) { return revalidated(p, "/hours"); }};
    r["GET /hours 400"] = {"GET /hours?colour=red", [](flowd_process& p) {
                               return http_client(p.port()).get("/hours?colour=red");
                           }};
    // A stream's body ends only at shutdown: the 200 is read whole once SIGTERM ends it.
    r["GET /flows/stream 200"] = {
        "GET /flows/stream?hour=1, its body ended by SIGTERM", [](flowd_process&) {
            flowd_process p;
            http_client c(p.port());
            c.write(flowd::test::request_head("GET", "/flows/stream?hour=1", {}));
            wait_streams_open(p, 1);
            p.signal(SIGTERM);
            return c.read();
        }};
    r["GET /flows/stream 400"] = {
        "GET /flows/stream?hour=1&group_by=src_app", [](flowd_process& p) {
            return http_client(p.port()).get("/flows/stream?hour=1&group_by=src_app");
        }};
    r["GET /flows/stream 503"] = {
        "GET /flows/stream while max_streams (1) is open", [](flowd_process&) {
            flowd::test::temp_dir dir;
            flowd_process p({"--config", dir.write("flowd.yaml", "max_streams: 1\n")});
            http_client first(p.port());
            first.write(flowd::test::request_head("GET", "/flows/stream?hour=1", {}));
            wait_streams_open(p, 1);
            return http_client(p.port()).get("/flows/stream?hour=1");
        }};
    // The console (open routes: no token, no data needed).
    r["GET / 302"] = {"GET /", [](flowd_process& p) { return http_client(p.port()).get("/"); }};
    r["GET /ui/ 200"] = {"GET /ui/",
                         [](flowd_process& p) { return http_client(p.port()).get("/ui/"); }};
    r["GET /ui/ 304"] = {"GET /ui/ again with If-None-Match: its ETag",
                         [](flowd_process& p) { return revalidated(p, "/ui/"); }};
    r["GET /ui/{file} 200"] = {
        "GET /ui/app.js", [](flowd_process& p) { return http_client(p.port()).get("/ui/app.js"); }};
    r["GET /ui/{file} 304"] = {"GET /ui/app.css again with If-None-Match: its ETag",
                               [](flowd_process& p) { return revalidated(p, "/ui/app.css"); }};
    r["GET /ui/{file} 404"] = {"GET /ui/nope.txt", [](flowd_process& p) {
                                   return http_client(p.port()).get("/ui/nope.txt");
                               }};
    for (std::string const path : {"/healthz", "/readyz", "/metrics"}) {
        r["GET " + path + " 200"] = {
            "GET " + path, [path](flowd_process& p) { return http_client(p.port()).get(path); }};
        r["GET " + path + " 400"] = {
            "GET " + path + " with Content-Length: zz", [path](flowd_process& p) {
                return send_raw(p, raw_request("GET", path, "Content-Length: zz\r\n"));
            }};
    }
    // Decided before routing, so the same on every route.
    std::vector<std::pair<std::string, std::string>> const routes{{"POST", "/flows"},
                                                                  {"GET", "/flows?hour=1"},
                                                                  {"GET", "/healthz"},
                                                                  {"GET", "/readyz"},
                                                                  {"GET", "/metrics"}};
    for (auto const& [method, target] : routes) {
        std::string const key = method + " " + target.substr(0, target.find('?'));
        std::string const body = method == "POST" ? "[]" : "";
        std::string const type = method == "POST" ? "Content-Type: application/json\r\n" : "";
        r[key + " 431"] = {
            key + " with a 17000-byte header", [=](flowd_process& p) {
                return send_raw(
                    p, raw_request(method, target,
                                   type + "X-Filler: " + std::string(17'000, 'a') + "\r\n", body));
            }};
        r[key + " 503"] = {
            key + " on an open connection after SIGTERM, while a request is in flight",
            [=](flowd_process&) {
                return while_draining(raw_request(method, target, type, body));
            }};
    }
    r["unrouted 404"] = {"GET /nope",
                         [](flowd_process& p) { return http_client(p.port()).get("/nope"); }};
    r["unrouted 405"] = {"DELETE /flows", [](flowd_process& p) {
                             return send_raw(p, raw_request("DELETE", "/flows"));
                         }};
    return r;
}

std::string media_type(http_response const& r) {
    std::string const ct = std::string(r[boost::beast::http::field::content_type]);
    std::string t = lower(ct.substr(0, ct.find(';')));
    while (!t.empty() && t.back() == ' ') {
        t.pop_back();
    }
    return t;
}

// The answer agrees with the documented response: status, required headers, media type,
// and for problems the Problem schema's required members and a documented `type`.
void expect_matches(std::string const& key, recipe const& how, json const& documented,
                    http_response const& r) {
    std::string const status = key.substr(key.rfind(' ') + 1);
    SCOPED_TRACE(key + " (" + how.how + ")");
    ASSERT_EQ(std::to_string(r.result_int()), status) << r;
    std::string const request_id = std::string(r["X-Request-Id"]);
    EXPECT_FALSE(request_id.empty()) << r;
    if (documented.contains("headers")) {
        for (auto const& [name, h] : documented.at("headers").items()) {
            json const& header = deref(h);
            if (header.value("required", "false") != "true") {
                continue;
            }
            auto const it = r.find(name);
            ASSERT_NE(it, r.end()) << "documented header " << name << " missing: " << r;
            json const& schema = header.value("schema", json::object());
            if (schema.contains("const")) {
                EXPECT_EQ(lower(std::string(it->value())),
                          lower(schema.at("const").get<std::string>()))
                    << name;
            }
        }
    }
    if (!documented.contains("content")) {
        return;
    }
    json const& content = documented.at("content");
    std::string const type = media_type(r);
    ASSERT_TRUE(content.contains(type))
        << "Content-Type " << type << " is not documented for " << key;
    if (type != "application/problem+json") {
        return;
    }
    json const body = json::parse(r.body());
    for (auto const& member : openapi().at("/components/schemas/Problem/required"_json_pointer)) {
        EXPECT_TRUE(body.contains(member.get<std::string>()))
            << "problem lacks " << member << ": " << r.body();
    }
    EXPECT_EQ(body.value("status", 0U), r.result_int());
    EXPECT_EQ(body.value("instance", ""), request_id);
    std::set<std::string> types;
    json const examples = content.at(type).value("examples", json::object());
    for (auto const& [name, example] : examples.items()) {
        types.insert(deref(example).at("value").at("type").get<std::string>());
    }
    EXPECT_TRUE(types.count(body.value("type", "")))
        << "problem type " << body.value("type", "") << " is not among the documented examples";
}

// ---- tests ----------------------------------------------------------------------

TEST(OpenapiTest, DocumentIsOpenapi31WithProblemSchema) {
    json const& doc = openapi();

    EXPECT_EQ(doc.value("openapi", "").rfind("3.1.", 0), 0U);
    EXPECT_TRUE(doc.contains("info"));
    json const& problem = doc.at("/components/schemas/Problem"_json_pointer);
    for (char const* member :
         {"type", "title", "status", "detail", "instance", "record", "field"}) {
        EXPECT_TRUE(problem.at("properties").contains(member)) << member;
    }
}

TEST(OpenapiTest, EveryDocumentedStatusHasARecipe) {
    auto const documented = documented_responses();
    auto const known = recipes();

    for (auto const& [key, response] : documented) {
        EXPECT_TRUE(known.count(key)) << "docs/openapi.yaml documents " << key
                                      << " but openapi_test.cpp has no recipe that elicits it";
    }
    for (auto const& [key, how] : known) {
        EXPECT_TRUE(documented.count(key))
            << "recipe " << key << " (" << how.how << ") is not in docs/openapi.yaml";
    }
}

TEST(OpenapiTest, FlowdAnswersEveryDocumentedStatus) {
    auto const documented = documented_responses();
    auto const known = recipes();
    flowd_process shared;

    for (auto const& [key, response] : documented) {
        auto const it = known.find(key);
        if (it == known.end()) {
            continue;  // reported by EveryDocumentedStatusHasARecipe
        }
        try {
            http_response const answer = it->second.run(shared);
            expect_matches(key, it->second, response, answer);
        } catch (std::exception const& e) {
            ADD_FAILURE() << key << " (" << it->second.how << "): " << e.what();
        }
    }
}

TEST(OpenapiTest, EveryServedRouteIsDocumented) {
    json const& paths = openapi().at("paths");
    // router::add(...) and the probe routes' emplace_back(...) both start this way.
    std::regex const route_re(R"re(\(\s*http::verb::(\w+)\s*,\s*"([^"]+)")re");
    std::size_t registered = 0;
    flowd_process p;

    // Routes as the code registers them.
    for (auto const& entry : std::filesystem::recursive_directory_iterator(source_dir + "/src")) {
        if (entry.path().extension() != ".cpp") {
            continue;
        }
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        std::string const s = text.str();
        for (std::sregex_iterator m(s.begin(), s.end(), route_re), end; m != end; ++m) {
            ++registered;
            std::string const method = (*m)[1];
            std::string const path = (*m)[2];
            EXPECT_TRUE(paths.contains(path) && paths.at(path).contains(method))
                << upper(method) << " " << path << " (" << entry.path().filename().string()
                << ") is not in docs/openapi.yaml";
        }
    }
    EXPECT_GE(registered, 5U) << "the route pattern no longer matches src/; update this test";
    // Routes as the running server reports them: 405's Allow lists a path's methods.
    for (auto const& [path, item] : paths.items()) {
        std::set<std::string> documented;
        for (std::string const& m : http_methods) {
            if (item.contains(m)) {
                documented.insert(upper(m));
            }
        }
        http_response const r = send_raw(p, raw_request("PATCH", path));
        ASSERT_EQ(r.result_int(), 405U) << "PATCH " << path << ": " << r;
        std::set<std::string> allowed;
        std::stringstream allow{std::string(r[boost::beast::http::field::allow])};
        for (std::string m; std::getline(allow >> std::ws, m, ',');) {
            allowed.insert(m);
        }
        // HEAD (beside every GET) and OPTIONS (everywhere) are answered by the router for
        // every route; openapi.yaml documents them once, in its description.
        EXPECT_EQ(allowed.count("OPTIONS"), 1U) << path;
        EXPECT_EQ(allowed.count("HEAD"), allowed.count("GET")) << path;
        allowed.erase("OPTIONS");
        allowed.erase("HEAD");
        EXPECT_EQ(allowed, documented) << "Allow on " << path << " vs docs/openapi.yaml";
        http_response const options = send_raw(p, raw_request("OPTIONS", path));
        EXPECT_EQ(options.result_int(), 204U) << "OPTIONS " << path;
    }
}

}  // namespace
