//! Writes the store the interop benchmark exports: `cargo run --release -p forklog-interop --example
//! bench_store -- DIR ROWS` makes run `bench` with ROWS rows of five float metrics (steps 0.., one second
//! apart), written with `log_columns`. Used by `interop/bench/bench_interop.py`.

use forklog::{Options, Store, SyncPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: bench_store DIR ROWS")?;
    let rows: u64 = args.next().ok_or("usage: bench_store DIR ROWS")?.parse()?;
    let store = Store::open_with(&dir, Options::default().sync(SyncPolicy::Never))?;
    let mut w = store.create_run("bench")?;
    let chunk = 16_384u64;
    let mut start = 0u64;
    while start < rows {
        let n = chunk.min(rows - start);
        let steps: Vec<u64> = (start..start + n).collect();
        let cols: Vec<Vec<f64>> = (0..5)
            .map(|k| {
                steps.iter().map(|&s| 1.0 / (s as f64 + 1.0) + f64::from(k) * 0.25 + (s % 7) as f64 * 1e-3).collect()
            })
            .collect();
        let named: Vec<(&str, &[f64])> =
            ["loss", "acc", "lr", "grad_norm", "val_loss"].iter().zip(&cols).map(|(k, c)| (*k, c.as_slice())).collect();
        w.log_columns(&steps, &named)?;
        start += n;
    }
    w.finish(0)?;
    Ok(())
}
