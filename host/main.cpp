// superpose — trains toy models of superposition by the thousand. See README.md.
#include "host/cli.hpp"

int main(int argc, char** argv) { return sp::run_cli(argc, argv); }
