use std::process::ExitCode;

use clap::Parser;
use pgm::cli::Cli;
use pgm::exit::{self, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    pgm::logging::init(&cli);
    match pgm::run(cli.into_config()) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        // A reader that stopped reading (`pgm … | head`) is not a failure.
        Err(error) if exit::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let mut report = format!("error: {error}");
            for cause in error.chain().skip(1) {
                report.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{report}");
            ExitCode::from(exit::code_for(&error))
        }
    }
}
