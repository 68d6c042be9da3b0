fn main() -> std::process::ExitCode {
    taskhook::cli::main()
}
