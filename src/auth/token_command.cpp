#include "flowd/auth/token_command.hpp"

#include <exception>
#include <optional>

#include "flowd/auth/tokens.hpp"

namespace flowd {

std::string token_usage() {
    return "usage: flowd token create --name NAME --scopes read,write\n"
           "\n"
           "Prints a new random bearer token (first line; shown only this once) and the line\n"
           "to append to the tokens file (second line; it holds only the token's SHA-256).\n"
           "Then send flowd SIGHUP to load it. NAME: 1..64 characters of A-Z a-z 0-9 . _ : @ -;\n"
           "scopes: read (GET /flows), write (POST /flows) or read,write.\n";
}

int run_token_command(std::vector<std::string> const& args, std::ostream& out, std::ostream& err) {
    auto bad = [&err](std::string const& why) {
        err << "flowd token: " << why << " (see flowd token --help)\n";
        return 2;
    };
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        out << token_usage();
        return 0;
    }
    if (args.empty() || args[0] != "create") {
        return bad(args.empty() ? "missing subcommand 'create'"
                                : "unknown subcommand '" + args[0] + "'");
    }
    std::optional<std::string> name;
    std::optional<std::string> scopes;
    for (std::size_t i = 1; i < args.size(); ++i) {
        std::string arg = args[i];
        if (arg == "--help" || arg == "-h") {
            out << token_usage();
            return 0;
        }
        std::optional<std::string> value;
        if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        if (arg != "--name" && arg != "--scopes") {
            return bad("unexpected argument '" + arg + "'");
        }
        if (!value) {
            if (i + 1 >= args.size()) {
                return bad(arg + ": needs a value");
            }
            value = args[++i];
        }
        (arg == "--name" ? name : scopes) = *value;
    }
    if (!name) {
        return bad("--name is required");
    }
    if (!valid_token_name(*name)) {
        return bad("--name: '" + *name + "' is not 1..64 characters of A-Z a-z 0-9 . _ : @ -");
    }
    if (!scopes) {
        return bad("--scopes is required (read, write or read,write)");
    }
    unsigned const bits = parse_scopes(*scopes);
    if (bits == 0) {
        return bad("--scopes: '" + *scopes + "' is not read, write or read,write");
    }
    try {
        std::string const token = generate_token();
        out << token << '\n' << token_file_line(*name, bits, token) << '\n';
        out.flush();
    } catch (std::exception const& e) {
        err << "flowd token: " << e.what() << '\n';
        return 1;
    }
    err << "flowd token: the first line is the token, shown only now: give it to the client as "
           "'Authorization: Bearer <token>'. Append the second line to the tokens file and send "
           "flowd SIGHUP.\n";
    return 0;
}

}  // namespace flowd
