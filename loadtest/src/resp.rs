//! A minimal RESP2 client over a blocking `TcpStream`: enough to load a
//! script, pipeline writes and read `INFO` / `MEMORY USAGE`. The loadtest
//! crate has no Redis client of its own and loyalty-scorer does not
//! re-export one.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// One connection to 127.0.0.1 (or `host`).
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Conn {
    pub fn open(host: &str, port: u16) -> io::Result<Conn> {
        let stream = if host == "127.0.0.1" {
            TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(2))?
        } else {
            TcpStream::connect((host, port))?
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        let writer = BufWriter::with_capacity(1 << 20, stream.try_clone()?);
        Ok(Conn { reader: BufReader::with_capacity(1 << 16, stream), writer })
    }

    /// Queues one command (sent by [`Conn::flush`] or [`Conn::call`]).
    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        write!(self.writer, "*{}\r\n", args.len())?;
        for arg in args {
            write!(self.writer, "${}\r\n", arg.len())?;
            self.writer.write_all(arg)?;
            self.writer.write_all(b"\r\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.send(args)?;
        self.flush()?;
        self.read()
    }

    /// Like [`Conn::call`], an error reply becoming an error.
    pub fn must(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        match self.call(args)? {
            Reply::Error(e) => Err(io::Error::other(format!("{}: {e}", String::from_utf8_lossy(args[0])))),
            reply => Ok(reply),
        }
    }

    pub fn read(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let bad = || io::Error::other(format!("bad reply line {line:?}"));
        let kind = line.chars().next().ok_or_else(bad)?;
        let rest = &line[1..];
        Ok(match kind {
            '+' => Reply::Status(rest.to_owned()),
            '-' => Reply::Error(rest.to_owned()),
            ':' => Reply::Int(rest.parse().map_err(|_| bad())?),
            '$' => match usize::try_from(rest.parse::<i64>().map_err(|_| bad())?) {
                Ok(n) => {
                    let mut data = vec![0; n + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n);
                    Reply::Bulk(Some(data))
                }
                Err(_) => Reply::Bulk(None),
            },
            '*' => {
                let n = rest.parse::<i64>().map_err(|_| bad())?.max(0);
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.read()?);
                }
                Reply::Array(items)
            }
            _ => return Err(bad()),
        })
    }
}

/// A field of `INFO` output (`name:value` lines).
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_owned())
}
