//! The `cert-manager-csi-driver` binary. Everything lives in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    cert_manager_csi_driver::cli::main()
}
