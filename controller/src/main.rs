//! `ferrolb-controller`: FerroLB's controller.
//!
//! Today it offers `validate`, the offline check of configuration manifests with the
//! same config model the running controller uses. The reconcilers arrive with the
//! controller issue.

mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ferrolb-controller", version, about = "FerroLB's controller")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks configuration manifests offline and prints every problem the controller would report.
    Validate {
        /// Manifest files (multi-document YAML); `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// The FerroLB namespace the objects are meant for.
        #[arg(short = 'n', long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
        namespace: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { files, namespace } => match validate::run(&files, &namespace) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(err) => {
                eprintln!("ferrolb-controller: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}
