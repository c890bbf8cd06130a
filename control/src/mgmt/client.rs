//! The management socket's client side (the CLI subcommands).

use super::protocol::{Reply, Request, Response};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the client waits for an answer (a `port add` opens sockets and
/// attaches a program; a big flow file is parsed whole).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer, or a refusal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the path.
    #[error("no daemon listening on {} (start one with `xswitch run`)", .0.display())]
    NoDaemon(PathBuf),
    /// The socket exists but this user may not use it.
    #[error("permission denied on {} (the management socket is root only)", .0.display())]
    PermissionDenied(PathBuf),
    /// The daemon refused the request (its one-line message).
    #[error("{0}")]
    Refused(String),
    /// The conversation broke.
    #[error("management socket {}: {what}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
}

/// A connection to a daemon.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the daemon at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let s = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NoDaemon(path.into())
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.into()),
            _ => ClientError::Io {
                path: path.into(),
                what: format!("connect: {e}"),
            },
        })?;
        let io_err = |e: io::Error| ClientError::Io {
            path: path.into(),
            what: e.to_string(),
        };
        s.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io_err)?;
        let writer = s.try_clone().map_err(io_err)?;
        Ok(Client {
            path: path.into(),
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Sends `req` and waits for its response.
    pub fn request(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let mut line = serde_json::to_string(req).map_err(|e| self.io(format!("encode: {e}")))?;
        line.push('\n');
        let sent = self
            .writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.flush());
        let mut resp = String::new();
        let read = self.reader.read_line(&mut resp);
        // A daemon that refuses the connection (too many connections)
        // writes its reason and closes, possibly before our request went
        // out: then the send fails (EPIPE) but the reason is already in our
        // receive buffer, and it says more than "broken pipe".
        let n = match (sent, read) {
            (_, Ok(n)) if n > 0 => n,
            (Err(e), _) => return Err(self.io(format!("send: {e}"))),
            (Ok(()), r) => r.map_err(|e| self.io(format!("receive: {e}")))?,
        };
        if n == 0 {
            return Err(self.io("the daemon closed the connection without answering".into()));
        }
        let resp: Response = serde_json::from_str(resp.trim())
            .map_err(|e| self.io(format!("unreadable response: {e}")))?;
        resp.into_result().map_err(ClientError::Refused)
    }

    fn io(&self, what: String) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            what,
        }
    }
}

/// Connects, sends one request, returns its answer.
pub fn call(path: &Path, req: &Request) -> Result<Reply, ClientError> {
    Client::connect(path)?.request(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_daemon_is_one_line_naming_the_path_and_the_fix() {
        let p = std::env::temp_dir().join(format!("xswitch-nobody-{}.sock", std::process::id()));
        let e = Client::connect(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no daemon listening on {} (start one with `xswitch run`)",
                p.display()
            )
        );
    }
}
