// cli.cpp — the `superpose` command line (host/cli/cli.hpp): its subcommands (each a file of
// host/cli/), parsed with CLI11, run, and every error turned into one line and an exit status.
#include "host/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <vector>

#include "host/cli/options.hpp"
#include "host/core/config.hpp"
#include "host/core/job.hpp"

namespace sp {

namespace {

// The command line: every subcommand's options added to `app`.
std::vector<std::unique_ptr<cli::Subcommand>> add_commands(CLI::App& app) {
  app.set_version_flag("--version", std::string("superpose ") + SUPERPOSE_VERSION);
  app.require_subcommand(1);
  std::vector<std::unique_ptr<cli::Subcommand>> commands;
  commands.push_back(cli::train_command());
  commands.push_back(cli::experiments_command());
  commands.push_back(cli::sweep_command());
  commands.push_back(cli::phase_diagram_command());
  commands.push_back(cli::merge_command());
  commands.push_back(cli::tms_command());
  for (const auto& command : commands) command->add(app);
  return commands;
}

const char* const kAbout = "superpose: trains toy models of superposition by the thousand";

}  // namespace

std::string options_json() {
  CLI::App app{kAbout};
  const auto commands = add_commands(app);
  nlohmann::ordered_json table = nlohmann::ordered_json::array();
  for (const auto& command : commands) {
    const CLI::App& c = *command->command;
    const bool has_recipe = c.get_option_no_throw("--recipe") != nullptr;
    nlohmann::ordered_json options = nlohmann::ordered_json::array();
    for (const CLI::Option* option : c.get_options()) {
      if (option->get_lnames().empty() || option->get_lnames().front() == "help") continue;
      const std::string name = "--" + option->get_lnames().front();
      const bool flag = option->get_items_expected_max() == 0;
      const std::string type = option->get_type_name();
      std::string kind = flag ? "FLAG" : type.substr(type.rfind(':') + 1);
      if (kind == "INT" || kind == "UINT") kind = "INTEGER";  // no validator: its C++ type's
      if (kind == "FLOAT") kind = "NUMBER";
      bool recipe = false;
      if (has_recipe)
        for (const char* set : cli::kRecipeOptions) recipe = recipe || name == set;
      options.push_back({{"option", name},
                         {"help", option->get_description()},
                         {"default", option->get_default_str()},
                         {"kind", kind},
                         {"values", flag ? 0 : option->get_expected_max()},
                         {"recipe", recipe}});
    }
    table.push_back(
        {{"command", c.get_name()}, {"description", c.get_description()}, {"options", options}});
  }
  return nlohmann::ordered_json{{"commands", table}}.dump();
}

int run_cli(int argc, char** argv) {
  CLI::App app{kAbout};
  const auto commands = add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_err("superpose: error: {}\n", e.what());
    return 2;
  }
  try {
    for (const auto& command : commands)
      if (command->command->parsed()) return command->run();
  } catch (const UsageError& e) {
    print_err("superpose: error: {}\n", e.what());
    return 2;
  } catch (const Cancelled&) {
    print_err(
        "superpose: stopped on request; a sweep keeps the chunks it finished (rerun to "
        "resume)\n");
    return 130;
  } catch (const std::bad_alloc&) {
    print_err(
        "superpose: failed: out of memory (the checks before training under-estimated "
        "this run: please report it with the command)\n");
    return 1;
  } catch (const std::exception& e) {
    print_err("superpose: failed: {}\n", e.what());
    return 1;
  }
  return 2;
}

}  // namespace sp
