//! The Python event throttler's README example, on tidegate's `Throttler`.
//!
//! Run: `cargo run -p tidegate --example throttler`

use std::time::Duration;

use tidegate::Throttler;

fn main() -> Result<(), tidegate::PolicyError> {
    // A throttler with a 10 s window: only the first event per key per window passes.
    let throttler = Throttler::new(Duration::from_secs(10))?;

    println!("{}", throttler.should_process(1, "e1", "userA")); // true (first event)
    println!("{}", throttler.should_process(5, "e2", "userA")); // false (within 10s window)
    println!("{}", throttler.should_process(12, "e3", "userA")); // true (after window)
    println!("{}", throttler.should_process(15, "e4", "userB")); // true (new user)
    println!("{}", throttler.should_process(20, "e5", "userB")); // false (still within window)

    // Change the window at run time; it applies to existing keys at once.
    throttler.update_window(Duration::from_secs(20))?;
    println!("window = {:?}", throttler.window()); // 20s
    println!("keys = {}", throttler.key_count()); // 2

    // Safe to share between threads: clones share the same state.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let t = throttler.clone();
            std::thread::spawn(move || {
                (0..1_000)
                    .filter(|i| t.should_process(100, "e", &format!("worker{w}-user{}", i % 100)))
                    .count()
            })
        })
        .collect();
    let processed: usize = workers.into_iter().map(|h| h.join().unwrap()).sum();
    println!("processed {processed} of 4000 events (one per key)"); // 400

    throttler.clear();
    println!("keys after clear = {}", throttler.key_count()); // 0
    Ok(())
}
