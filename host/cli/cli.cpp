// cli.cpp — the `superpose` command line (host/cli/cli.hpp): its subcommands (each a file of
// host/cli/), parsed with CLI11, run, and every error turned into one line and an exit status.
#include "host/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <new>
#include <vector>

#include "host/cli/options.hpp"
#include "host/core/config.hpp"
#include "host/core/job.hpp"

namespace sp {

int run_cli(int argc, char** argv) {
  CLI::App app{"superpose: trains toy models of superposition by the thousand"};
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
