#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace flowd {

// `flowd token create --name NAME --scopes read,write` (args start after "token"): prints
// a fresh token on the first line of `out` and its tokens-file line on the second, with
// guidance on `err`; returns 0. A bad argument: one line on `err`, returns 2.
// `flowd token --help`: usage on `out`, returns 0.
[[nodiscard]] int run_token_command(std::vector<std::string> const& args, std::ostream& out,
                                    std::ostream& err);

[[nodiscard]] std::string token_usage();

}  // namespace flowd
