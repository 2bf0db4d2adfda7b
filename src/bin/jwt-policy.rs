//! `jwt-policy`: check, render and try JWTPolicy resources with the filter's own parser.
//! See `jwt-policy help`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = String::new();
    let mut err = String::new();
    let code = jwt_policy_filter::cli::run(&args, &mut out, &mut err);
    print!("{out}");
    eprint!("{err}");
    std::process::exit(code);
}
