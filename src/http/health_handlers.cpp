#include "flowd/http/health_handlers.hpp"

namespace flowd {

namespace http = boost::beast::http;

response healthz_answer() {
    return response{json_response(200, "{\"status\":\"ok\"}")};
}

namespace {

response unavailable(problem_type type, std::string detail, std::string_view request_id) {
    return response{problem_response(problem{type, std::move(detail), {}, {}}, request_id)};
}

}  // namespace

response readyz_answer(readiness const& r, std::string_view request_id) {
    if (!r.ready) {
        return r.draining
                   ? unavailable(problem_type::shutting_down, "flowd is shutting down", request_id)
                   : unavailable(problem_type::starting, "flowd is starting", request_id);
    }
    if (!r.halted_because.empty()) {
        return unavailable(problem_type::cluster_unavailable,
                           "this node stopped applying the stream: " + r.halted_because,
                           request_id);
    }
    if (r.catching_up_at) {
        string_response out =
            problem_response(problem{problem_type::cluster_unavailable,
                                     "catching up with the stream (applied sequence " +
                                         std::to_string(*r.catching_up_at) + ")",
                                     {},
                                     {}},
                             request_id);
        out.set(http::field::retry_after, "1");
        return response{std::move(out)};
    }
    if (r.log_failed) {
        return unavailable(problem_type::log_unavailable,
                           "the write-ahead log cannot be written; see flowd's log", request_id);
    }
    return response{json_response(200, "{\"status\":\"ready\"}")};
}

}  // namespace flowd
