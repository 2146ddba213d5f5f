//! The `pds` binary: the server, the operator CLI and the protocol tools in one executable.
//!
//! `main` only parses the command line and hands over to [`cli`]; each subcommand lives in its own
//! module there.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
