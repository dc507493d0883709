//! Servers that misbehave on purpose, below the HTTP library: raw TCP and TLS byte streams.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::pki::Leaf;

/// How the server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Reads the ClientHello, answers with the first bytes of a TLS record, then stalls.
    StallTls,
    /// Completes TLS, then sends the response head one byte per second.
    DribbleHeaders,
    /// Answers 200 with a 1 GiB body (streamed until the client goes away).
    HugeBody,
    /// Answers with bytes that are not HTTP at all (HTTP/0.9 style).
    Garbage,
    /// Sends the head and half the body, then resets the connection.
    ResetMidResponse,
    /// 200 with a body that is not UTF-8.
    InvalidUtf8,
    /// 200 with a body that is not JSON.
    InvalidJson,
}

/// Serves `behaviour` on `listener` until dropped.
pub struct HostileServer(tokio::task::JoinHandle<()>);

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HostileServer {
    pub fn start(
        listener: std::net::TcpListener,
        leaf: Leaf,
        behaviour: Behaviour,
    ) -> HostileServer {
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let acceptor = TlsAcceptor::from(super::https::server_config(&leaf.into()));
        HostileServer(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, acceptor, behaviour).await;
                });
            }
        }))
    }
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            return Ok(());
        }
        buf.push(byte[0]);
    }
    Ok(())
}

async fn respond<S: AsyncWrite + Unpin>(s: &mut S, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await
}

async fn serve(
    mut tcp: TcpStream,
    acceptor: TlsAcceptor,
    behaviour: Behaviour,
) -> std::io::Result<()> {
    if let Behaviour::StallTls = behaviour {
        let mut hello = [0u8; 512];
        let _ = tcp.read(&mut hello).await?;
        tcp.write_all(&[0x16, 0x03, 0x03, 0x00]).await?; // a record header, cut short
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    let mut tls = acceptor.accept(tcp).await?;
    loop {
        read_request(&mut tls).await?;
        match behaviour {
            Behaviour::StallTls => unreachable!(),
            Behaviour::DribbleHeaders => {
                for b in b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}" {
                    tls.write_all(&[*b]).await?;
                    tls.flush().await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Behaviour::HugeBody => {
                tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n")
                    .await?;
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..(1 << 14) {
                    tls.write_all(&chunk).await?;
                }
                return Ok(());
            }
            Behaviour::Garbage => {
                tls.write_all(b"garbage \x00\x01 without any status line\n")
                    .await?;
                tls.flush().await?;
                tls.shutdown().await?;
                return Ok(());
            }
            Behaviour::ResetMidResponse => {
                tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"server\":")
                    .await?;
                tls.flush().await?;
                let (tcp, _) = tls.into_inner();
                tcp.set_zero_linger()?; // close with RST
                drop(tcp);
                return Ok(());
            }
            Behaviour::InvalidUtf8 => {
                respond(&mut tls, b"{\"server\":{\"name\":\"\xff\xfe\xfd\"}}").await?
            }
            Behaviour::InvalidJson => {
                respond(&mut tls, b"{\"server\": {\"name\": \"Synapse\"").await?
            }
        }
    }
}
