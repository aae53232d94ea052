use clap::Parser;
use std::io::Write;

fn main() {
    let cli = gpunet::cli::Cli::parse();
    if let Err(e) = gpunet::cli::run(cli) {
        // The reader of stdout or stderr went away (`gpunet … | head -1`):
        // it has what it wanted, so stop quietly, as Unix tools do.
        if gpunet::output::is_closed_pipe(&e) {
            std::process::exit(0);
        }
        // If stderr itself cannot be written, the exit status still tells.
        let _ = writeln!(std::io::stderr(), "error: {e:#}");
        std::process::exit(1);
    }
}
