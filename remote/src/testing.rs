//! A moto S3 server process for tests and benchmarks (not a stable API): started on a free port of
//! 127.0.0.1, a bucket created with a plain `PUT`, paused and resumed with signals, killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    watchdog: Option<Child>,
}

impl MotoServer {
    /// The binary named by `FORKLOG_MOTO_SERVER`, or `None` when the variable is unset.
    pub fn binary() -> Option<String> {
        std::env::var("FORKLOG_MOTO_SERVER").ok().filter(|s| !s.is_empty())
    }

    /// Starts `binary` on a free port of 127.0.0.1 and waits until it answers (at most 30 s).
    pub fn start(binary: impl AsRef<Path>) -> std::io::Result<MotoServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary.as_ref())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // A server kept in a `static` is never dropped: a watchdog kills it once this process is gone.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill -CONT \"$2\" 2>/dev/null; kill -9 \"$2\" 2>/dev/null",
                "forklog-moto-watchdog",
                &std::process::id().to_string(),
                &child.id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut server = MotoServer { child, port, watchdog: watchdog.ok() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if server.request("GET", "/").is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(std::io::Error::other(format!("moto_server exited: {status}")));
            }
            if Instant::now() > deadline {
                let _ = server.child.kill();
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "moto_server did not start"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client needs: endpoint, dummy credentials, region, plain http.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Creates `bucket` with a plain `PUT /bucket`.
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        let status = self.request("PUT", &format!("/{bucket}"))?;
        if status / 100 != 2 {
            return Err(std::io::Error::other(format!("creating bucket {bucket}: HTTP {status}")));
        }
        Ok(())
    }

    /// Stops the server process (SIGSTOP): requests hang until [`MotoServer::resume`].
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal("-STOP")
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> std::io::Result<()> {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("kill {sig} failed")));
        }
        Ok(())
    }

    /// One HTTP/1.1 request without a body; returns the status code.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        let head = String::from_utf8_lossy(&buf[..n]);
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer {head:?}")))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
