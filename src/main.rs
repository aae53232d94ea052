use clap::Parser;

fn main() {
    let cli = gpunet::cli::Cli::parse();
    if let Err(e) = gpunet::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
