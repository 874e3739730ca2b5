//! A limiter with two policies on one key, checked with weighted costs.
//!
//! Run: `cargo run -p tidegate --example limiter`

use tidegate::{Limiter, PolicySet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // At most 5 per second and 8 per hour, consumed from both or neither.
    let policies: PolicySet = "gcra:5/1s;fixed_window:8/1h".parse()?;
    let limiter = Limiter::new(policies);

    for i in 1..=10 {
        let d = limiter.check("api-key-42", 1)?;
        println!(
            "request {i:2}: allowed={} limit={} remaining={} retry_after={:?}",
            d.allowed,
            d.limit,
            d.remaining,
            d.retry_after()
        );
    }

    // A cost that can never fit is an error, not a silent deny.
    match limiter.check("api-key-42", 6) {
        Err(e) => println!("cost 6: {e}"),
        Ok(d) => println!("cost 6: {d:?}"),
    }
    Ok(())
}
