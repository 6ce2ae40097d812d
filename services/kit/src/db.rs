//! The embedded store's plumbing: one SQLite file per service, WAL mode, migrations at
//! start-up, and a small pool that runs every call on Tokio's blocking threads.
//!
//! SQLite allows one writer at a time, so writes go through a single connection (no
//! `SQLITE_BUSY` dances) while reads share several. We hand-roll the pool rather than use
//! deadpool-sqlite because that one pings each connection on checkout, an extra
//! blocking hop on every query.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Errors from the store plumbing. Domain stores wrap these.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration {version} failed: {source}")]
    Migration { version: usize, source: rusqlite::Error },
    #[error("the database task was cancelled or panicked")]
    Task,
    #[error("the database pool is closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl DbError {
    /// SQLite's primary result code, when SQLite refused.
    /// (Not of a failed migration: that happens at start, and a stuck schema does not pass.)
    fn code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Self::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        }
    }

    /// The same failure for another caller of the same transaction (the error itself is
    /// not `Clone`): a full disk stays a full disk, SQLite's refusals keep their code,
    /// anything else is ours.
    pub fn echo(&self) -> DbError {
        const ENOSPC: i32 = 28;
        match self {
            _ if self.is_disk_full() => Self::Io(std::io::Error::from_raw_os_error(ENOSPC)),
            Self::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
                Self::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
            }
            _ => Self::Io(std::io::Error::other(self.to_string())),
        }
    }

    /// Whether the disk had no room for the change (it was rolled back).
    pub fn is_disk_full(&self) -> bool {
        const ENOSPC: i32 = 28;
        self.code() == Some(rusqlite::ErrorCode::DiskFull)
            || matches!(self, Self::Io(e) if e.raw_os_error() == Some(ENOSPC))
    }
}

/// What a caller is told when its change could not be stored: a full disk and a busy
/// store are conditions that pass (507 and 503; the transaction that failed was rolled
/// back); anything else is ours.
impl From<DbError> for crate::ApiError {
    fn from(e: DbError) -> Self {
        if e.is_disk_full() {
            tracing::error!(error = %e, "the store's disk is full: writes are refused");
            return Self::InsufficientStorage(
                "the server has no room to store this right now; nothing was changed".into(),
            );
        }
        match e.code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Unavailable("the store is busy; nothing was changed, try again".into())
            }
            _ => Self::internal(e),
        }
    }
}

/// A handful of connections handed out one at a time.
struct Pool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    fn new(conns: Vec<Connection>) -> Self {
        let n = conns.len();
        Self { idle: Mutex::new(conns), permits: Arc::new(Semaphore::new(n)) }
    }

    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        // The permit goes with the work onto its thread: a caller that gives up (a
        // cancelled request) must not free its place while its connection is still busy,
        // or the next caller would find no connection idle.
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| DbError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // The permit guarantees a connection is idle.
            let mut conn = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop().ok_or(DbError::Closed)?;
            // A panic in `f` (a bug) must not take the connection with it: the pool has
            // one writer. Its transaction rolled back as it unwound; the connection stays.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conn)));
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result.unwrap_or(Err(DbError::Task))
        })
        .await
        .map_err(|_| DbError::Task)?
    }
}

/// A service's SQLite database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    writer: Arc<Pool>,
    readers: Arc<Pool>,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Migrations are plain SQL scripts, applied in order; `PRAGMA user_version` remembers how
/// many ran. Never edit a released one: append a new one.
pub type Migrations = &'static [&'static str];

/// Per-connection set-up, e.g. registering application-defined SQL functions.
pub type Setup = fn(&Connection) -> rusqlite::Result<()>;

impl Db {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>, migrations: Migrations) -> Result<Self, DbError> {
        Self::open_with(path, migrations, |_| Ok(())).await
    }

    /// Like [`Db::open`], running `setup` on every connection (to register SQL functions).
    pub async fn open_with(path: impl AsRef<Path>, migrations: Migrations, setup: Setup) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(2, 16);
        let p = path.clone();
        tokio::task::spawn_blocking(move || -> Result<Db, DbError> {
            let mut writer = open_conn(&p, false)?;
            setup(&writer)?;
            migrate(&mut writer, migrations)?;
            // Fresh statistics for the query planner (cheap: it only analyses tables
            // whose statistics are missing or stale).
            writer.execute_batch("PRAGMA optimize = 0x10002;")?;
            let readers = (0..readers)
                .map(|_| {
                    let c = open_conn(&p, true)?;
                    setup(&c)?;
                    Ok(c)
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            Ok(Db { writer: Arc::new(Pool::new(vec![writer])), readers: Arc::new(Pool::new(readers)), path: p })
        })
        .await
        .map_err(|_| DbError::Task)?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside one write transaction, committed when `f` returns `Ok`.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let outcome = self
            .writer
            .run(move |conn| {
                // IMMEDIATE takes the write lock up front, so a read-then-write inside `f`
                // cannot be invalidated by another writer (there is none, but other
                // processes may open the file).
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                match f(&tx) {
                    Ok(v) => {
                        tx.commit()?;
                        Ok(Ok(v))
                    }
                    Err(e) => Ok(Err(e)),
                }
            })
            .await;
        match outcome {
            Ok(inner) => inner,
            Err(e) => Err(E::from(e)),
        }
    }

    /// Like [`Db::write`], then `settled` with what `f` returned once it is committed, or
    /// with why it was not. `settled` runs on the writer's thread before the next write
    /// begins, whether or not the caller still waits: what must follow a commit (memory
    /// kept in step with the file) follows it even when the caller's request is dropped.
    pub async fn write_settled<T, F, S>(&self, f: F, settled: S) -> Result<T, DbError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, DbError> + Send + 'static,
        S: FnOnce(Result<&mut T, &DbError>) + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .run(move |conn| {
                let outcome = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(DbError::from)
                    .and_then(|tx| {
                        // A panic in `f` (a bug) is settled as a failure too; its
                        // transaction rolls back as `tx` drops.
                        let value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&tx)))
                            .unwrap_or(Err(DbError::Task))?;
                        tx.commit()?;
                        Ok(value)
                    });
                match outcome {
                    Ok(mut value) => {
                        settled(Ok(&mut value));
                        Ok(value)
                    }
                    Err(e) => {
                        settled(Err(&e));
                        Err(e)
                    }
                }
            })
            .await
    }

    /// Runs `f` on a read-only connection.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match self.readers.run(move |conn| Ok(f(conn))).await {
            Ok(inner) => inner,
            Err(e) => Err(E::from(e)),
        }
    }

    /// A cheap query that proves the file is readable: the readiness probe.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(DbError::from)).await
    }
}

/// Row helpers shared by every SQLite store: ids are UUID text, lists and documents JSON.
pub mod row {
    use rusqlite::types::Type;
    use uuid::Uuid;

    pub fn uuid(s: String) -> rusqlite::Result<Uuid> {
        Uuid::parse_str(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
    }

    pub fn json<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<T> {
        serde_json::from_str(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
    }

    pub fn to_json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_else(|_| "null".into())
    }

    /// Escapes `%`, `_` and `\\` for a `LIKE ... ESCAPE '\\'` substring pattern.
    pub fn like_substring(q: &str) -> String {
        let mut out = String::with_capacity(q.len() + 2);
        out.push('%');
        for c in q.chars() {
            if matches!(c, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('%');
        out
    }
}

/// See `open_conn`: 1 TiB of address space, of which SQLite maps as much as the file is.
const MMAP_SIZE: i64 = 1 << 40;

fn open_conn(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if !read_only {
        // WAL lets readers proceed while the writer writes; NORMAL sync is durable
        // across application crashes and loses at most the last commits on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The writer's page cache holds the index pages a transaction touches; at the
        // default 2 MiB a large write spills and re-reads them, and bulk loads slow down
        // with the size of the database. It grows only as pages are used.
        conn.pragma_update(None, "cache_size", -64 * 1024)?;
    } else {
        conn.pragma_update(None, "cache_size", -8 * 1024)?;
    }
    // Pages are read through a memory map shared by every connection and the OS page
    // cache, instead of copied into each connection's cache by a read call: concurrent
    // searches on four readers ran twice as fast (bench/search.sh). SQLite caps the map at
    // its compiled maximum, raised from 2 GiB to this in `.cargo/config.toml`.
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection, migrations: Migrations) -> Result<(), DbError> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in migrations.iter().enumerate().skip(applied) {
        let version = i + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|source| DbError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version as i64)?;
        tx.commit()?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_a_507_and_a_busy_store_a_503() {
        use rusqlite::ffi;
        let failure = |code| DbError::Sqlite(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        let status = |e: DbError| crate::ApiError::from(e).status().as_u16();
        assert_eq!(status(failure(ffi::SQLITE_FULL)), 507);
        assert_eq!(status(DbError::Io(std::io::Error::from_raw_os_error(28))), 507);
        assert_eq!(status(failure(ffi::SQLITE_BUSY)), 503);
        assert_eq!(status(failure(ffi::SQLITE_CORRUPT)), 500);
        // Echoed to another waiter of the same transaction, each keeps its status.
        for (e, code) in [(failure(ffi::SQLITE_FULL), 507), (failure(ffi::SQLITE_BUSY), 503), (DbError::Task, 500)] {
            assert_eq!(status(e.echo()), code, "{e}");
        }
    }

    const MIGRATIONS: Migrations =
        &["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);", "ALTER TABLE t ADD COLUMN w TEXT;"];

    #[tokio::test]
    async fn what_follows_a_commit_follows_it_even_when_the_caller_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        let (seen, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let insert =
            |v: &'static str| move |tx: &rusqlite::Transaction| Ok(tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?);
        let report = |seen: tokio::sync::mpsc::UnboundedSender<_>| {
            move |outcome: Result<&mut usize, &DbError>| {
                seen.send(outcome.map(|n| *n).map_err(|e| e.to_string())).unwrap();
            }
        };
        assert_eq!(db.write_settled(insert("a"), report(seen.clone())).await.unwrap(), 1);
        assert_eq!(heard.recv().await.unwrap(), Ok(1));
        // A caller that stops waiting (a dropped request) does not stop the write or what
        // follows it.
        // The write waits until the caller has given up: no race on how long it takes.
        let (go, given_up) = std::sync::mpsc::channel::<()>();
        let slow = move |tx: &rusqlite::Transaction| {
            given_up.recv().ok();
            Ok(tx.execute("INSERT INTO t (v) VALUES ('b')", [])?)
        };
        let dropped = tokio::time::timeout(Duration::from_millis(20), db.write_settled(slow, report(seen.clone())));
        assert!(dropped.await.is_err(), "the caller gave up");
        go.send(()).unwrap();
        assert_eq!(heard.recv().await.unwrap(), Ok(1));
        // A failed write is settled as one, and nothing of it stays.
        let failing = db.write_settled(
            |tx: &rusqlite::Transaction| {
                tx.execute("INSERT INTO t (v) VALUES ('c')", [])?;
                Ok(tx.execute("INSERT INTO nowhere (v) VALUES ('d')", [])?)
            },
            report(seen),
        );
        assert!(failing.await.is_err());
        assert!(heard.recv().await.unwrap().unwrap_err().contains("nowhere"));
        let count = |c: &Connection| c.query_row("SELECT group_concat(v) FROM t", [], |r| r.get::<_, String>(0));
        assert_eq!(db.read(move |c| count(c).map_err(DbError::from)).await.unwrap(), "a,b");
    }

    #[tokio::test]
    async fn migrations_apply_once_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let db = Db::open(&path, MIGRATIONS).await.unwrap();
        db.write(|tx| tx.execute("INSERT INTO t (v, w) VALUES ('a', 'b')", []).map_err(DbError::from)).await.unwrap();
        drop(db);
        let db = Db::open(&path, MIGRATIONS).await.unwrap();
        let n: i64 =
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(n, 1);
        let mode: String =
            db.read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_write_given_up_by_its_caller_keeps_the_writer_until_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        // The caller stops waiting while the write still runs on its thread.
        let slow = db.write(|tx| {
            std::thread::sleep(Duration::from_millis(300));
            tx.execute("INSERT INTO t (v) VALUES ('slow')", []).map_err(DbError::from)
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), slow).await.is_err());
        // The next write waits for the one writer instead of finding it gone.
        db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('next')", []).map_err(DbError::from)).await.unwrap();
        let n: i64 =
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(n, 2, "both writes happened");
    }

    #[tokio::test]
    async fn a_panicking_write_rolls_back_and_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        let r: Result<(), DbError> = db
            .write(|tx| {
                tx.execute("INSERT INTO t (v) VALUES ('a')", [])?;
                panic!("a bug");
            })
            .await;
        assert!(matches!(r, Err(DbError::Task)), "{r:?}");
        db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('b')", []).map_err(DbError::from)).await.unwrap();
        let n: i64 =
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn failed_write_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        let r: Result<(), DbError> = db
            .write(|tx| {
                tx.execute("INSERT INTO t (v) VALUES ('a')", [])?;
                Err(DbError::Closed)
            })
            .await;
        assert!(r.is_err());
        let n: i64 =
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn reads_go_through_a_memory_map() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        let mapped: i64 =
            db.read(|c| c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(mapped, MMAP_SIZE, "readers should map the whole file, however large (SQLite's cap raised)");
        db.write(|tx| tx.execute("INSERT INTO t (v) VALUES ('a')", []).map_err(DbError::from)).await.unwrap();
        let seen: i64 =
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).map_err(DbError::from)).await.unwrap();
        assert_eq!(seen, 1, "a committed write is visible to the mapped readers");
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("x.db"), MIGRATIONS).await.unwrap();
        let r = db.read(|c| c.execute("INSERT INTO t (v) VALUES ('a')", []).map_err(DbError::from)).await;
        assert!(r.is_err());
    }
}
