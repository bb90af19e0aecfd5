//! High availability on PostgreSQL: servers sharing one database elect a leader with
//! a session-level advisory lock. The leader holds it on a dedicated connection for
//! its whole life; a standby waits on the same lock and takes over as soon as the
//! leader's session ends (its process died: the kernel closes the socket, the
//! database releases the lock). A leader whose lock connection breaks must stop at
//! once (fencing): another server may already lead.

use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::store::StoreError;

/// The lock key of a database schema (servers on different schemas of one database
/// lead independently).
pub fn lock_key(schema: Option<&str>) -> i64 {
    // FNV-1a: stable across builds (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("allot-leader:{}", schema.unwrap_or("public")).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h as i64
}

/// Leadership, held as long as this value lives and its connection does.
pub struct LeaderLease {
    conn: PgConnection,
}

impl LeaderLease {
    /// Waits until this process leads.
    pub async fn acquire(url: &str, schema: Option<&str>) -> Result<LeaderLease, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        let mut conn = PgConnection::connect_with(&opts).await?;
        let key = lock_key(schema);
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut conn).await?;
        Ok(LeaderLease { conn })
    }

    /// Resolves when leadership is lost (the lock connection broke).
    pub async fn lost(mut self) -> StoreError {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let probe = tokio::time::timeout(Duration::from_secs(5), self.conn.execute("SELECT 1")).await;
            match probe {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return e.into(),
                Err(_) => return StoreError::Invalid("leader lock connection timed out".into()),
            }
        }
    }
}

/// A standby answering 503 on everything but `/healthz` until it leads.
pub struct Standby {
    pub addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<tokio::net::TcpListener>>,
}

async fn standby_answer() -> impl axum::response::IntoResponse {
    ([(crate::client::ROLE_HEADER, "standby")], ApiError::unavailable("standby: another server leads"))
}

impl Standby {
    pub async fn listen(addr: std::net::SocketAddr) -> std::io::Result<Standby> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let app = Router::new()
                .route("/healthz", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "standby"})) }))
                .fallback(standby_answer);
            // Serve on a clone of the socket so that the listener itself is kept.
            let std_listener = listener.into_std()?;
            let clone = std_listener.try_clone()?;
            let serving = tokio::net::TcpListener::from_std(clone)?;
            axum::serve(serving, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await?;
            tokio::net::TcpListener::from_std(std_listener)
        });
        Ok(Standby { addr, stop, task })
    }

    /// Stops answering as a standby and hands back the listening socket.
    pub async fn into_listener(self) -> std::io::Result<tokio::net::TcpListener> {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("standby did not stop")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_schema_and_are_stable() {
        assert_eq!(lock_key(None), lock_key(Some("public")));
        assert_ne!(lock_key(Some("a")), lock_key(Some("b")));
        assert_eq!(lock_key(Some("a")), lock_key(Some("a")));
    }
}
