//! `bench-connect`, `bench-connrate` and `hold`: connection latency, connection rate and many
//! idle connections, for the benchmarks and the connection-limit tests.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Instant,
};

use serde_json::json;

use crate::{TIMEOUT, fail, merge, print};

/// Sends a line and reads its echo.
pub(crate) fn ping(s: &mut TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"ping\n")?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply)?;
    if &reply != b"ping\n" {
        return Err(std::io::Error::other("unexpected echo"));
    }
    Ok(())
}

/// Reads until the peer closes (or the read timeout), for `--await-close`.
pub(crate) fn await_close(s: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

/// Median, p99, max and mean in µs of samples in ns (sorted in place).
pub(crate) fn percentiles(samples: &mut [u64]) -> serde_json::Value {
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    json!({"median_us": pct(0.5), "p99_us": pct(0.99), "max_us": pct(1.0), "mean_us": mean})
}

/// connect() latency: the syscall alone (handshake included), then close (with
/// `--await-close`, after a line echoed and the server's close, not timed).
pub(crate) fn bench_connect(addr: SocketAddr, count: usize, await_server: bool) {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e));
        samples.push(t.elapsed().as_nanos() as u64);
        if await_server {
            ping(&mut s)
                .and_then(|()| await_close(&mut s))
                .unwrap_or_else(|e| fail(&e));
        }
    }
    print(merge(
        json!({"ok": true, "count": count}),
        percentiles(&mut samples),
    ));
}

/// Short connections per second: each one connects, writes a line, reads its echo and closes
/// (after the server's close with `--await-close`); COUNT in all, shared by `threads` clients
/// each running one connection at a time. Latency is per connection, connect to close.
pub(crate) fn bench_connrate(addr: SocketAddr, count: usize, threads: usize, await_server: bool) {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let n = count / threads + usize::from(i < count % threads);
            std::thread::spawn(move || -> std::io::Result<Vec<u64>> {
                let mut samples = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
                    s.set_nodelay(true)?;
                    ping(&mut s)?;
                    if await_server {
                        await_close(&mut s)?;
                    }
                    drop(s);
                    samples.push(t.elapsed().as_nanos() as u64);
                }
                Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(count);
    for w in workers {
        match w.join().expect("client thread") {
            Ok(s) => samples.extend(s),
            Err(e) => fail(&e),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    print(merge(
        json!({"ok": true, "count": count, "threads": threads, "per_s": count as f64 / elapsed}),
        percentiles(&mut samples),
    ));
}

/// Opens N connections (with `--echo`, one line each and its echo, so a proxy's upstream is
/// established too), reports them open, and keeps them idle until stdin closes.
pub(crate) fn hold(addr: SocketAddr, n: usize, echo: bool) {
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let opened = (|| -> std::io::Result<TcpStream> {
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            if echo {
                ping(&mut s)?;
            }
            Ok(s)
        })();
        match opened {
            Ok(s) => held.push(s),
            Err(e) => {
                print(
                    json!({"ok": false, "open": held.len(), "errno": e.raw_os_error(), "error": e.to_string()}),
                );
                std::process::exit(1)
            }
        }
    }
    print(
        json!({"ok": true, "open": held.len(), "elapsed_ms": started.elapsed().as_millis() as u64}),
    );
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}
