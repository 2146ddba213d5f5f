//! `pds key`: generate a signing keypair, or show the public forms of an existing private key.
//!
//! Output is line-oriented (`did:key: …`, `multikey: …`, `private key (hex): …`) or, with
//! `--json`, one JSON object with `curve`, `did_key`, `multikey` and (for `generate`)
//! `private_key_hex`. A bad private key exits with status 2.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use atp_crypto::zeroize::Zeroizing;
use atp_crypto::{Curve, Keypair};
use clap::Subcommand;

/// Arguments of `pds key`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Generate a new keypair and print its did:key, multikey and private key.
    Generate {
        /// Curve of the new key: k256 (secp256k1, the atproto default) or p256.
        #[arg(long, default_value = "k256")]
        curve: Curve,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the did:key and multikey of a private key.
    Show {
        /// The private key as 64 hex digits, or `-` to read it from the first line of stdin
        /// (keeps it out of the process list and shell history).
        private_key_hex: String,
        /// Curve of the key: k256 (secp256k1) or p256.
        #[arg(long, default_value = "k256")]
        curve: Curve,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `pds key`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        KeyCommand::Generate { curve, json } => {
            let keypair = Keypair::generate(curve);
            print_key(&keypair, json, true);
        }
        KeyCommand::Show {
            private_key_hex,
            curve,
            json,
        } => {
            let hex = Zeroizing::new(private_key_hex);
            let keypair = if hex.as_str() == "-" {
                let line = read_secret_line()?;
                Keypair::from_private_hex(curve, line.trim())
            } else {
                Keypair::from_private_hex(curve, hex.trim())
            }?;
            print_key(&keypair, json, false);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_secret_line() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the private key from stdin")?;
    Ok(line)
}

fn print_key(keypair: &Keypair, json: bool, with_private: bool) {
    let public = keypair.public_key();
    if json {
        let mut object = serde_json::json!({
            "curve": keypair.curve().as_str(),
            "did_key": public.did_key(),
            "multikey": public.multikey(),
        });
        if with_private {
            object["private_key_hex"] = serde_json::Value::from(keypair.private_hex().as_str());
        }
        println!("{object}");
    } else {
        println!("did:key: {}", public.did_key());
        println!("multikey: {}", public.multikey());
        if with_private {
            println!("private key (hex): {}", keypair.private_hex().as_str());
        }
    }
}
