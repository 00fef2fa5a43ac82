#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>
#include <string_view>

#include "flowd/domain/text.hpp"
#include "flowd/query/plan.hpp"

// The Accept header's half of a plan: which answer format a client asks for.
namespace flowd {

answer_format negotiate_format(std::string_view accept, bool ndjson_ok) {
    // q of json, ndjson, csv: -1 until named; a specific type beats a wildcard (RFC 9110).
    std::array<double, 3> specific{-1, -1, -1};
    std::array<double, 3> wildcard{-1, -1, -1};
    any_list_element(accept, [&specific, &wildcard](std::string_view element) {
        std::size_t const semi = element.find(';');
        std::string const type = ascii_lower(trim_ows(element.substr(0, semi)));
        double q = 1;
        if (semi != std::string_view::npos) {
            std::string_view params = element.substr(semi + 1);
            while (!params.empty()) {
                std::size_t const next = params.find(';');
                std::string_view const p = trim_ows(params.substr(0, next));
                if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    std::string const w(p.substr(2));
                    char* end = nullptr;
                    double const v = std::strtod(w.c_str(), &end);
                    q = (end == w.c_str() || v < 0) ? 0 : std::min(v, 1.0);
                }
                if (next == std::string_view::npos) {
                    break;
                }
                params.remove_prefix(next + 1);
            }
        }
        auto set = [](double& slot, double v) { slot = std::max(slot, v); };
        if (type == "application/json") {
            set(specific[0], q);
        } else if (type == "application/x-ndjson" || type == "application/ndjson") {
            set(specific[1], q);
        } else if (type == "text/csv") {
            set(specific[2], q);
        } else if (type == "*/*") {
            for (double& w : wildcard) {
                set(w, q);
            }
        } else if (type == "application/*") {
            set(wildcard[0], q);
            set(wildcard[1], q);
        } else if (type == "text/*") {
            set(wildcard[2], q);
        }
        return false;
    });
    answer_format best = answer_format::json;
    double best_q = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        if (i == 1 && !ndjson_ok) {
            continue;
        }
        double const q = specific.at(i) >= 0 ? specific.at(i) : std::max(0.0, wildcard.at(i));
        if (q > best_q) {
            best_q = q;
            best = static_cast<answer_format>(i);
        }
    }
    return best;
}

}  // namespace flowd
